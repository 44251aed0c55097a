"""`config upgrade`: v1/v2 documents to v3 as ngrok's command does (agent/upgrade-v2-v3.mdx,
agent/config/v3.mdx "Breaking changes"), and the command around it (backup, dry run, refusals)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from agentapi.cli.config_commands import check_files, run_config_command
from agentapi.cli.config_upgrade import UpgradeError, upgrade
from agentapi.cli.errors import AgentError

V2 = """\
version: "2"
authtoken: 4nq9771bPxe8ctg7LKr_2ClH7Y15Zqe4bWLWF9p
api_key: 24yRd5U3DestCQapJrrVHLOqiAC_7RviwRqpd3wc9dKLujQZN
server_addr: agent.example.com:443
root_cas: host
region: eu
web_addr: 127.0.0.1:4045
console_ui: false
log_level: info
tunnels:
  basic:
    proto: http
    addr: 80
    auth: "ann:password1"
  both:
    proto: http
    addr: 81
    bind_tls: both
  db:
    proto: tcp
    addr: 5432
    remote_addr: 127.0.0.1:2222
"""


def test_v2_agent_keys_move_under_agent_with_ngroks_renames() -> None:
    result = upgrade(yaml.safe_load(V2))
    document = result.document
    assert list(document) == ["version", "agent", "tunnels"]
    assert document["version"] == "3"
    assert document["agent"] == {
        "authtoken": "4nq9771bPxe8ctg7LKr_2ClH7Y15Zqe4bWLWF9p",
        "api_key": "24yRd5U3DestCQapJrrVHLOqiAC_7RviwRqpd3wc9dKLujQZN",
        "connect_url": "agent.example.com:443",
        "connect_cas": "host",
        "region": "eu",
        "web_addr": "127.0.0.1:4045",
        "console_ui": False,
        "log_level": "info",
    }
    assert (result.from_version, result.to_version) == (2, 3)
    assert "server_addr -> agent.connect_url" in result.changes


def test_tunnels_are_kept_with_their_legacy_option_names_renamed() -> None:
    tunnels = upgrade(yaml.safe_load(V2)).document["tunnels"]
    assert tunnels["basic"] == {"proto": "http", "addr": 80, "basic_auth": ["ann:password1"]}
    assert tunnels["both"] == {"proto": "http", "addr": 81, "schemes": ["https", "http"]}
    assert tunnels["db"] == {"proto": "tcp", "addr": 5432, "remote_addr": "127.0.0.1:2222"}


def test_a_file_without_a_version_gets_version_2_and_ngrok_2s_region_first() -> None:
    result = upgrade({"authtoken": "t", "tunnels": {"w": {"proto": "http", "addr": 80, "bind_tls": True}}}, 2)
    assert result.document == {
        "version": "2",
        "authtoken": "t",
        "region": "us",
        "tunnels": {"w": {"proto": "http", "addr": 80, "schemes": ["https"]}},
    }


def test_the_input_document_is_not_changed() -> None:
    document = yaml.safe_load(V2)
    upgrade(document)
    assert document == yaml.safe_load(V2)


def test_a_v3_file_needs_nothing() -> None:
    result = upgrade({"version": 3, "agent": {"authtoken": "t"}})
    assert result.changes == ()


@pytest.mark.parametrize(
    ("document", "version", "says"),
    [
        ({"version": "3", "agent": {}}, 2, "cannot downgrade a version 3 file to version 2"),
        ({"version": "7"}, 3, "unsupported config version '7'"),
        ({"version": "2", "tunnels": {"e": {"labels": ["edge=x"], "addr": 80}}}, 3, "no labeled tunnels"),
        ({"version": "2", "server_addr": "a:1", "agent": {"connect_url": "b:1"}}, 3, "keep one"),
        ({"version": "2", "tunnels": {"w": {"addr": 80, "bind_tls": "sometimes"}}}, 3, "invalid bind_tls"),
    ],
)
def test_what_cannot_be_upgraded_is_refused_saying_why(document: dict, version: int, says: str) -> None:
    with pytest.raises(UpgradeError, match=says):
        upgrade(document, version)


def run(*what: str, config: Path, **flags: bool) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    run_config_command("config", {"what": list(what), "config": [str(config)], **flags}, out, err)
    return out.getvalue(), err.getvalue()


def test_upgrade_writes_a_backup_and_its_result_passes_config_check(tmp_path: Path) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text(V2)
    printed, said = run("upgrade", config=config)
    assert yaml.safe_load(config.read_text()) == yaml.safe_load(printed)
    assert (tmp_path / "ngrok.yml.bak").read_text() == V2
    assert f"the original is kept in {tmp_path / 'ngrok.yml.bak'}" in said
    check_files([config])
    # A second upgrade has nothing to do, and a second backup would not overwrite the first.
    run("upgrade", config=config)
    assert not (tmp_path / "ngrok.yml.bak.1").exists()


def test_a_dry_run_prints_the_result_and_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text(V2)
    printed, said = run("upgrade", config=config, dry_run=True)
    assert yaml.safe_load(printed)["agent"]["connect_url"] == "agent.example.com:443"
    assert config.read_text() == V2
    assert not (tmp_path / "ngrok.yml.bak").exists()
    assert "dry run" in said


def test_an_upgrade_whose_result_would_not_load_leaves_the_file_alone(tmp_path: Path) -> None:
    config = tmp_path / "ngrok.yml"
    original = 'version: "2"\ntunnels:\n  w:\n    addr: 80\n    frobnicate: 1\n'
    config.write_text(original)
    with pytest.raises(AgentError, match="the upgraded file would not load"):
        run("upgrade", config=config)
    assert config.read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ngrok.yml"]


def test_upgrade_to_a_version_that_is_not_2_or_3_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "ngrok.yml"
    config.write_text(V2)
    with pytest.raises(AgentError, match="the version to upgrade to is 2 or 3"):
        run("upgrade", "4", config=config)


def test_add_connect_url_is_refused_as_ngroks_cloud(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="custom agent ingress is part of ngrok's cloud"):
        run("add-connect-url", "agent.example.com:443", config=tmp_path / "ngrok.yml")


def test_an_unknown_config_subcommand_names_what_there_is(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"unsupported: config frobnicate \(this agent knows: .*config upgrade"):
        run("frobnicate", config=tmp_path / "ngrok.yml")
