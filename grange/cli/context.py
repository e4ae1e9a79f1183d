"""What every CLI command receives: the global options, the config read once, the admin call."""

from __future__ import annotations

import os
from typing import Any

import click

from grange.cli.client import admin_call
from grange.util.config import Config, load_config


class Ctx:
    def __init__(self, config_path: str | None, rpc_host: str | None, rpc_secret: str | None) -> None:
        self.config_path = config_path
        self.rpc_host = rpc_host or os.environ.get("GRANGE_RPC_HOST") or os.environ.get("GARAGE_RPC_HOST")
        self.rpc_secret = rpc_secret
        self._config: Config | None = None

    def config(self, require_secret: bool = True) -> Config:
        if self._config is None or (require_secret and self._config.rpc_secret_bytes is None):
            env = dict(os.environ)
            if self.rpc_secret:
                env["GRANGE_RPC_SECRET"] = self.rpc_secret
            self._config = load_config(self.config_path, env, require_secret=require_secret)
        return self._config

    def call(self, op: str, body: Any = None, query: dict[str, str] | None = None, **streams: Any) -> Any:
        return admin_call(self.config(), self.rpc_host, op, body, query, **streams)


pass_ctx = click.make_pass_decorator(Ctx)
