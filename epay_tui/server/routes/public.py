"""Public calls: meta, captcha, health."""

from __future__ import annotations

from fastapi import APIRouter

from epay_tui.api import models
from epay_tui.server import accounts
from epay_tui.server.deps import BackendDep

router = APIRouter()


@router.get("/api/v1/meta", response_model=models.Meta, tags=["public"])
def meta(backend: BackendDep) -> models.Meta:
    """School, payee, payment hours (``[opens, closes)`` in school time) and channels."""
    config = backend.config
    return models.Meta(
        school=config.school,
        payee=config.payee,
        timezone=config.timezone,
        server_time=backend.time.now(),
        payment_hours=models.PaymentHoursInfo(
            opens=config.payment_hours.opens,
            closes=config.payment_hours.closes,
            open_now=backend.time.open_now(),
        ),
        channels=list(models.CHANNELS),
        order_ttl_seconds=config.order_ttl_seconds,
        sandbox=True,
    )


@router.post("/api/v1/captcha", response_model=models.Captcha, tags=["public"])
def captcha(backend: BackendDep) -> models.Captcha:
    """A single-use captcha, valid 5 minutes; answers are case-insensitive."""
    return accounts.new_captcha(backend)


@router.get("/healthz", response_model=models.Health, tags=["public"])
def healthz() -> models.Health:
    return models.Health(status="ok")
