"""Errors of the network layer, as a small hierarchy the layers above map at their edge."""


class RpcError(Exception):
    """Base class: an RPC could not be completed."""


class NotConnected(RpcError):
    """No open connection to that node."""


class ConnectionClosed(RpcError):
    """The connection broke while the exchange was in flight."""


class RemoteError(RpcError):
    """The remote handler raised; the message is its error text."""


class RpcTimeout(RpcError, TimeoutError):
    """No answer before the call's deadline."""
