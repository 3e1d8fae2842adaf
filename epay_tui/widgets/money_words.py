"""Words of the counter's money shared by the helpdesk pages: how a payment was made,
a refund's kind and state."""

from __future__ import annotations

from epay_tui.i18n import tr

COUNTER_METHODS = ("cash", "pos")


def channel_word(lang: str, channel: str | None) -> str:
    """微信支付 … for a gateway channel, 现金 / POS for the counter's."""
    if not channel:
        return "-"
    if channel in COUNTER_METHODS:
        return tr(lang, f"counter.{channel}")
    return tr(lang, f"channel.{channel}")


def refund_kind(lang: str, kind: str) -> str:
    return tr(lang, f"refund.kind.{kind}")


def refund_status(lang: str, status: str) -> str:
    return tr(lang, f"refund.status.{status}")
