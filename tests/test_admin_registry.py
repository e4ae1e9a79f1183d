"""The admin operation table against the shared contract."""

from grange.api.admin import rpc  # noqa: F401  (fills the registry)
from grange.api.admin.registry import OPERATIONS
from tests.spec import operation_names


def test_every_operation_is_named_as_in_the_admin_api_contract() -> None:
    assert OPERATIONS, "no admin operation registered"
    public = {name for name, op in OPERATIONS.items() if not op.internal}
    unknown = public - operation_names()
    assert not unknown, f"operations not in garage-admin-v2.json: {sorted(unknown)}"


def test_issue_2_operations_are_all_implemented() -> None:
    wanted = {
        "GetClusterStatus", "GetClusterHealth", "GetClusterLayout", "UpdateClusterLayout",
        "PreviewClusterLayoutChanges", "ApplyClusterLayout", "RevertClusterLayout",
        "GetClusterLayoutHistory", "ConnectClusterNodes", "GetNodeInfo",
    }
    assert wanted <= set(OPERATIONS)
