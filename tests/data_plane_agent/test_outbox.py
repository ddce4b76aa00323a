from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_plane_agent.link.outbox import Outbox


def test_events_survive_reopen_in_order_until_acked(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "state.db")
    seqs = [outbox.append("t", {"i": i}) for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    outbox.ack(seqs[1])
    outbox.close()

    reopened = Outbox(tmp_path / "state.db")
    pending = reopened.unacked()
    assert [e.seq for e in pending] == [seqs[0], *seqs[2:]]
    assert [json.loads(e.payload_json)["i"] for e in pending] == [0, 2, 3, 4]
    assert [e.seq for e in reopened.unacked(after_seq=seqs[2], limit=1)] == [seqs[3]]


def test_sequence_continues_above_what_the_control_plane_applied(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "state.db")
    outbox.ensure_sequence_above(41)
    assert outbox.append("t", {}) == 42
    outbox.ensure_sequence_above(10)  # never goes backwards
    assert outbox.append("t", {}) == 43


def test_a_command_id_is_begun_only_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "state.db")
    record, first = outbox.begin_command("cmd_1", "ping", "run-a")
    assert first and record.state == "running"
    again, first_again = outbox.begin_command("cmd_1", "ping", "run-b")
    assert not first_again and again.run_id == "run-a"
    outbox.finish_command("cmd_1", ok=True, result_json='{"pong": true}', error=None)
    done = outbox.command("cmd_1")
    assert done is not None and done.finished and done.result_json == '{"pong": true}'


def test_empty_event_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="type"):
        Outbox(tmp_path / "state.db").append("", {})


def test_unsent_events_numbered_below_the_applied_seq_are_renumbered_not_lost(tmp_path: Path) -> None:
    """State reset: the control plane has applied up to 10, the fresh outbox numbered from 1."""
    outbox = Outbox(tmp_path / "state.db")
    for i in range(3):
        outbox.append("t", {"i": i})
    outbox.ensure_sequence_above(10)
    pending = outbox.unacked()
    assert [e.seq for e in pending] == [11, 12, 13]
    assert [json.loads(e.payload_json)["i"] for e in pending] == [0, 1, 2]
    assert outbox.append("t", {"i": 3}) == 14


def test_after_the_first_sync_unacked_events_keep_their_numbers(tmp_path: Path) -> None:
    """An event at or below the applied seq was applied and its ack lost: renumbering it would
    apply it twice."""
    outbox = Outbox(tmp_path / "state.db")
    outbox.ensure_sequence_above(0)  # the first welcome of a fresh state file
    seqs = [outbox.append("t", {"i": i}) for i in range(3)]
    outbox.ensure_sequence_above(2)  # the control plane applied 1 and 2; their acks were lost
    assert [e.seq for e in outbox.unacked()] == seqs
    outbox.close()
    assert [e.seq for e in Outbox(tmp_path / "state.db").unacked()] == seqs  # also after a restart
