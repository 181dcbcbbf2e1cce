"""Label sets and versions on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from labelwise.errors import NotFoundError
from labelwise.labelset import parse_document
from labelwise.models import labelsets, tenants


def doc(threshold: float = 0.3) -> object:
    return parse_document({"name": "support", "threshold": threshold, "labels": [{"name": "billing"}]})


def test_versions_are_numbered_immutable_and_unchanged_documents_are_a_no_op(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        t = tenants.create_tenant(s, "acme")
        v1, created1 = labelsets.apply_document(s, tenant_id=t.id, doc=doc())
        again, created_again = labelsets.apply_document(s, tenant_id=t.id, doc=doc())
        v2, created2 = labelsets.apply_document(s, tenant_id=t.id, doc=doc(0.4))
        assert (v1.version, created1, again.version, created_again, v2.version, created2) == (
            1,
            True,
            1,
            False,
            2,
            True,
        )
        assert labelsets.current_version(s, tenant_id=t.id, name="support").document["threshold"] == 0.4
        assert [
            v.document["threshold"] for v in labelsets.list_versions(s, tenant_id=t.id, label_set_id=v1.label_set_id)
        ] == [0.3, 0.4]


def test_rollback_points_back_and_delete_hides_until_reapplied(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        t = tenants.create_tenant(s, "acme")
        labelsets.apply_document(s, tenant_id=t.id, doc=doc())
        labelsets.apply_document(s, tenant_id=t.id, doc=doc(0.4))
        labelsets.rollback(s, tenant_id=t.id, name="support", version=1)
        assert labelsets.current_version(s, tenant_id=t.id, name="support").version == 1
        with pytest.raises(NotFoundError):
            labelsets.rollback(s, tenant_id=t.id, name="support", version=9)
        labelsets.delete_label_set(s, tenant_id=t.id, name="support")
        with pytest.raises(NotFoundError, match="unknown label set"):
            labelsets.current_version(s, tenant_id=t.id, name="support")
        revived, created = labelsets.apply_document(s, tenant_id=t.id, doc=doc())
        assert created and revived.version == 3


def test_another_tenant_cannot_see_the_set(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        a = tenants.create_tenant(s, "a")
        b = tenants.create_tenant(s, "b")
        labelsets.apply_document(s, tenant_id=a.id, doc=doc())
        assert labelsets.find_label_set(s, tenant_id=b.id, name="support") is None
        assert [x.name for x in labelsets.list_label_sets(s, tenant_id=a.id)] == ["support"]
