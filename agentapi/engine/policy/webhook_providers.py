"""The webhook providers verify-webhook knows, by ngrok's provider identifiers, and the one call
that verifies a request for one of them. Pure functions: no I/O, the clock injected.

Rules:
- Names are ngrok's identifiers (`traffic-policy/actions/verify-webhook.mdx`, "Supported
  providers"). ngrok's docs name the providers but not their schemes; each scheme here is the one
  the provider documents (cited where its check is built: webhook_schemes.py for the shared
  shapes, webhook_bespoke.py and webhook_challenges.py for the rest).
- `hmac-sha256` is this agent's own generic provider, not ngrok's (a hyphen, so it can never clash
  with an ngrok identifier): `X-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, the
  header GitHub uses under a neutral name, for a service of your own.
- A provider ngrok lists that this agent does not verify is refused when the policy loads, with
  the reason (sns: its messages are checked against a certificate downloaded from Amazon, which
  this agent does not fetch); so is a name ngrok does not list. Nothing is passed unverified.
- Tolerances are the provider's documented window where it has one (Stripe, Slack, Svix: 300 s;
  Calendly: 180 s; Box: 600 s; Linear: 60 s), else 300 s for a provider that signs a timestamp
  without documenting a window (Mux, Frame.io, Buildkite, Zoom).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import webhook_bespoke as bespoke
from . import webhook_challenges as challenges
from .errors import PolicyError
from .webhook_schemes import body_hmac, listed_body_hmac, standard_webhooks, timestamped_list, versioned_timestamp
from .webhook_signing import Check, Verdict, WebhookRequest


@dataclass(frozen=True, slots=True)
class Provider:
    """A provider verify-webhook can check: its ngrok identifier and its check."""

    name: str
    check: Check


# Meta signs every product's webhooks the same way (developers.facebook.com, "Webhooks", "Validate
# payloads"): X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>.
_META = body_hmac("X-Hub-Signature-256", prefix="sha256=")

_CHECKS: dict[str, Check] = {
    "aftership": body_hmac("aftership-hmac-sha256", encoding="base64"),
    "alchemy": body_hmac("X-Alchemy-Signature"),
    "autodesk": body_hmac("x-adsk-signature", digest="sha1", prefix="sha1hash="),
    "bitbucket": body_hmac("X-Hub-Signature", prefix="sha256="),
    "bolt": body_hmac("X-Bolt-Hmac-Sha256", encoding="base64"),
    "box": bespoke.box,
    "brex": standard_webhooks("webhook"),
    "buildkite": timestamped_list(
        "X-Buildkite-Signature", timestamp_key="timestamp", signature_key="signature", tolerance=300
    ),
    "calendly": timestamped_list("Calendly-Webhook-Signature", tolerance=180),
    "castle": body_hmac("X-Castle-Signature", encoding="base64"),
    "chargify": body_hmac("X-Chargify-Webhook-Signature-Hmac-Sha-256"),
    "circleci": listed_body_hmac("circleci-signature"),
    "clerk": standard_webhooks("svix"),
    "coinbase": body_hmac("X-CC-Webhook-Signature"),
    "docusign": bespoke.docusign,
    "dropbox": body_hmac("X-Dropbox-Signature"),
    "facebook_graph_api": _META,
    "facebook_messenger": _META,
    "frameio": versioned_timestamp("X-Frameio-Signature", "X-Frameio-Request-Timestamp", tolerance=300),
    "github": body_hmac("X-Hub-Signature-256", prefix="sha256="),
    "gitlab": bespoke.gitlab,
    "heroku": body_hmac("Heroku-Webhook-Hmac-SHA256", encoding="base64"),
    "instagram": _META,
    "intercom": body_hmac("X-Hub-Signature", digest="sha1", prefix="sha1="),
    "jira": body_hmac("X-Hub-Signature", prefix="sha256="),
    "launch_darkly": body_hmac("X-LD-Signature"),
    "linear": bespoke.linear,
    "mailgun": bespoke.mailgun,
    "microsoft_teams": bespoke.microsoft_teams,
    "modern_treasury": body_hmac("X-Signature"),
    "mongodb": body_hmac("X-MMS-Signature", digest="sha1", encoding="base64"),
    "mux": timestamped_list("Mux-Signature", tolerance=300),
    "pagerduty": listed_body_hmac("X-PagerDuty-Signature"),
    "pusher": body_hmac("X-Pusher-Signature"),
    "sendgrid": bespoke.sendgrid,
    "sentry": body_hmac("Sentry-Hook-Signature"),
    "shopify": body_hmac("X-Shopify-Hmac-Sha256", encoding="base64"),
    "slack": versioned_timestamp("X-Slack-Signature", "X-Slack-Request-Timestamp", tolerance=300),
    "sonatype": body_hmac("X-Nexus-Webhook-Signature", digest="sha1"),
    "square": bespoke.square,
    "stripe": timestamped_list("Stripe-Signature", tolerance=300),
    "svix": standard_webhooks("svix", "webhook"),
    "terraform": body_hmac("X-TFE-Notification-Signature", digest="sha512"),
    "twilio": bespoke.twilio,
    "twitter": challenges.twitter,
    "typeform": body_hmac("Typeform-Signature", encoding="base64", prefix="sha256="),
    "webex": body_hmac("X-Spark-Signature", digest="sha1"),
    "whatsapp": _META,
    "worldline": challenges.worldline,
    "xero": challenges.xero,
    "zendesk": bespoke.zendesk,
    "zoom": challenges.zoom,
    # Ours, not ngrok's: see the banner.
    "hmac-sha256": body_hmac("X-Signature-256", prefix="sha256="),
}

PROVIDERS: dict[str, Provider] = {name: Provider(name, check) for name, check in sorted(_CHECKS.items())}

_SNS_REASON = (
    "Amazon SNS messages are verified against a certificate downloaded from Amazon (SigningCertURL), "
    "which this agent does not fetch; verify them in your service"
)
# ngrok's identifiers this agent does not verify (yet): refused at load, never passed unchecked.
NOT_VERIFIED_HERE: dict[str, str] = {
    "sns": _SNS_REASON,
    **{
        name: "this agent does not verify its signatures yet"
        for name in (
            "airship",
            "clearbit",
            "contentful",
            "go1",
            "graphcms",
            "hostedhooks",
            "hubspot",
            "mailchimp",
            "orb",
            "orbit",
            "pinwheel",
            "plivo",
            "signal_sciences",
            "tiktok",
            "trendmicro_conformity",
            "vmware",
        )
    },
}


def provider_named(name: str) -> Provider:
    """The provider for an ngrok identifier (or `hmac-sha256`).

    Raises PolicyError naming it and why: a provider ngrok has that this agent does not verify,
    or an unknown name (the message lists the supported ones).
    """
    provider = PROVIDERS.get(name)
    if provider is not None:
        return provider
    shown = repr(name[:64])
    if name in NOT_VERIFIED_HERE:
        raise PolicyError(f"the {shown} provider is not supported by this agent: {NOT_VERIFIED_HERE[name]}")
    raise PolicyError(f"unknown provider {shown}; supported: {', '.join(PROVIDERS)}")


def verify(
    provider: Provider,
    secret: bytes,
    *,
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    now: float,
) -> Verdict:
    """Check one request against `provider`'s scheme.

    `url` is the absolute URL the provider called (Twilio and Square sign it); `headers` as
    received, latin-1 text; `body` the whole raw body; `now` epoch seconds. Returns the Verdict:
    ok, or why not, and a handshake's answer when the request was a provider's challenge. Never
    raises for anything a request contains.
    """
    request = WebhookRequest(method=method.upper(), url=url, headers=headers, body=body)
    return provider.check(request, secret, now)
