"""Each test alone is fine; together they take raft_mu and coalesced_mu in both orders."""

from replication import Replica, Store


def test_report_unreachable() -> None:
    r = Replica()
    r.report_unreachable(3)
    assert r.unreachable == [3]


def test_coalesce_heartbeats() -> None:
    r = Replica()
    r.coalesce_heartbeats()
    assert r.heartbeats == 1


def test_store_in_one_order() -> None:
    s = Store()
    s.put()
    s.put()
