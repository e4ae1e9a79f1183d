"""Shared test set-up: async tests run on uvloop, as the server does."""

import uvloop


def pytest_asyncio_loop_factories(config, item):
    return {"uvloop": uvloop.new_event_loop}
