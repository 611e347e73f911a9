"""The person behind a principal: the four-eyes rule compares people, not role ARNs."""

from __future__ import annotations

from meridian.people import person_of, same_person

TRADER = "arn:aws:sts::123456789012:assumed-role/meridian-trader-prod/alice"
OFFICER = "arn:aws:sts::123456789012:assumed-role/meridian-compliance-officer-prod/alice"


def test_a_session_is_its_callers_name_whatever_the_role() -> None:
    assert person_of(TRADER) == person_of(OFFICER) == "alice"
    assert same_person(TRADER, OFFICER)
    assert not same_person(TRADER, OFFICER.replace("/alice", "/carl"))
    assert person_of("arn:aws:iam::123456789012:user/desk/bob") == "bob"
    assert person_of("arn:aws:sts::123456789012:federated-user/dora") == "dora"
    assert person_of("trader-1") == "trader-1"
    assert not same_person("", "")
