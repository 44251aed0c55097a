"""restrict-ips: allow or deny by the client's address (layer 4, never X-Forwarded-For).

Rules (ngrok's docs, `traffic-policy/actions/restrict-ips.mdx`; `errors/err_ngrok_393.mdx`):
- Phases: on_tcp_connect, on_http_request, on_http_response. Config: `enforce` (default true),
  `allow` and `deny` (lists of CIDRs, IPv4 or IPv6, `${...}` allowed in each entry).
- "A connection is allowed only if its source IP matches at least one of the allowed CIDRs and
  does not match any of the denied CIDRs." So `deny` without `allow` would refuse everyone:
  ngrok refuses that config (ERR_NGROK_393: add 0.0.0.0/0 and ::/0 to allow), and so do we; a
  config with neither list is refused too.
- A CIDR is `address/prefix` (host bits are masked, as Go's net.ParseCIDR does); a bare address is
  not a CIDR (write /32 or /128). A constant entry that does not parse is refused at load
  (ngrok's ERR_NGROK_362); an interpolated one fails the rule at run time.
- The address is `conn.client_ip`; an IPv4-mapped IPv6 address is matched as its IPv4 address.
  An address that does not parse is refused.
- A refused client, when `enforce` is true: on_tcp_connect closes the connection; the HTTP phases
  answer 403 (no body) and end the phase. With `enforce: false` traffic goes on.
- `ip_policies` name IP Policies kept in ngrok's cloud: refused at load, with the way out.
- actions.ngrok.restrict_ips.action ("allow" or "deny"), .matched_cidr (the entry that matched,
  as written; "" when none did), .error.code/.message ("", or why the address was refused
  without a match).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from .. import cel
from ..errors import PolicyRuntimeError
from ..outcomes import CloseConnection, Outcome, Respond
from .base import PHASES, TCP, Action, Config, PhaseRun

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_cidr(text: str) -> Network:
    """A CIDR as Go's net.ParseCIDR reads it (host bits masked); ValueError when it is not one."""
    if "/" not in text:
        raise ValueError(f"{text!r:.80} is not a CIDR: write address/prefix, e.g. {text.strip()}/32")
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r:.80} is not a CIDR (ERR_NGROK_362)") from None


@functools.lru_cache(maxsize=4096)  # parsing is most of this action's cost; clients come back
def client_address(text: str) -> Address | None:
    """The client's address, IPv4-mapped IPv6 as IPv4; None when it does not parse."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class _Entry:
    """One configured CIDR: parsed at load when constant, else parsed per run."""

    field: str  # "allow[0]"
    template: cel.Template
    network: Network | None

    def resolve(self, run: PhaseRun) -> tuple[str, Network]:
        if self.network is not None:
            return self.template.source, self.network
        text = run.render(self.template)
        try:
            return text, parse_cidr(text)
        except ValueError as error:
            raise PolicyRuntimeError(f"{self.field}: {error}") from None


def _entries(config: Config, name: str) -> tuple[_Entry, ...]:
    entries = []
    for index, text in enumerate(config.strings(name)):
        field = f"{name}[{index}]"
        template = cel.compile_template(text, where=f"{config.where}.{field}")
        network = None
        if template.constant:
            try:
                network = parse_cidr(text)
            except ValueError as error:
                raise config.error(field, str(error)) from None
        entries.append(_Entry(field, template, network))
    return tuple(entries)


class RestrictIps(Action):
    """restrict-ips: `allow`/`deny` CIDR lists against conn.client_ip; `enforce`."""

    type = "restrict-ips"
    phases = frozenset(PHASES)

    def __init__(self, config: Config, *, phase: str) -> None:
        super().__init__(config, phase=phase)
        if config.has("ip_policies"):
            raise config.error(
                "ip_policies",
                "IP Policies are kept in ngrok's cloud and cannot be read by this agent: list their CIDRs in allow and deny instead",
            )
        self.enforce = config.boolean("enforce", True)
        self.allow = _entries(config, "allow")
        self.deny = _entries(config, "deny")
        if not self.allow:
            if self.deny:
                raise config.error(
                    "allow",
                    "when specifying CIDRs to deny, you must specify at least one CIDR to allow, otherwise all "
                    "traffic is denied (ERR_NGROK_393): add 0.0.0.0/0 and ::/0 to accept all traffic not denied",
                )
            raise config.error("allow", "at least one CIDR to allow is required")
        config.finish()

    def _decide(self, run: PhaseRun, address: Address) -> tuple[bool, str]:
        """(allowed, the entry that matched or "")."""
        for entry in self.deny:
            text, network = entry.resolve(run)
            if address in network:
                return False, text
        for entry in self.allow:
            text, network = entry.resolve(run)
            if address in network:
                return True, text
        return False, ""

    def run(self, run: PhaseRun) -> Outcome | None:
        ip = run.conn.client_ip
        address = client_address(ip)
        error = {"code": "", "message": ""}
        if address is None:
            allowed, matched = False, ""
            error["message"] = f"the client address {ip!r:.80} is not an IP address"
        else:
            allowed, matched = self._decide(run, address)
        run.scope.actions["restrict_ips"] = {
            "action": "allow" if allowed else "deny",
            "matched_cidr": matched,
            "error": error,
        }
        run.scope.changed("actions")
        if allowed:
            run.note(self.type, f"allowed {ip} ({matched})")
            return None
        why = f"{ip} denied by {matched}" if matched else f"{ip} not allowed"
        if not self.enforce:
            run.note(self.type, f"would refuse: {why} (not enforced)")
            return None
        if run.phase == TCP:
            run.note(self.type, f"closed: {why}", terminal=True)
            return CloseConnection()
        run.note(self.type, f"403: {why}", terminal=True)
        return Respond(403)


ACTIONS = (RestrictIps,)
