"""The Lua scripts are made from engine/store/schema.py: its constants are folded into each script
as literals, so a script names the schema's constants and pays nothing for it, and a name the
schema lacks fails when the script is made, not as a nil at run time."""

from __future__ import annotations

import re

import pytest

from engine.store.schema import STATE_FIELDS, fold_constants
from engine.store.scripts import OTHER_SCRIPTS, WAVE_SCRIPTS, script_text


def test_the_schemas_constants_become_literals() -> None:
    lua = "if st[SF.phase] == PH.claimed then redis.call('HGET', KEYS[K.state], RF.kind) end"
    assert fold_constants(lua) == (f"if st['{STATE_FIELDS['phase']}'] == 'c' then "
                                   "redis.call('HGET', KEYS[3], 'kind') end")
    assert fold_constants("redis.call('GET', foo.bar, Q.sms)") == "redis.call('GET', foo.bar, Q.sms)"


def test_a_name_the_schema_lacks_fails_when_the_script_is_made() -> None:
    with pytest.raises(ValueError, match=r"SF\.phse"):
        fold_constants("return st[SF.phse]")


@pytest.mark.parametrize("name", [*WAVE_SCRIPTS, *OTHER_SCRIPTS])
def test_every_script_is_made_with_its_constants_folded(name: str) -> None:
    text = script_text(name)
    body = text.split("\n", 1)[1]  # the generated header's own table definitions aside
    left = re.findall(r"\b(?:K|SF|RF|PH|GUARD|POLICY|SETTLE|CNT|META|WS|KIND|RES|VERDICT|DIR)\.\w+", body)
    assert left == [], left
