"""The pure parts of the query service's guards: the sign-in bucket, client addresses, the guard settings."""

from __future__ import annotations

import dataclasses

import pytest

from query._proxy import address_key
from query._rate_limit import RateLimiter
from runstream.config import ConfigError, Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_one_attempt_per_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(attempts=10, window_seconds=60, clock=clock)
    assert [limiter.take("a") for _ in range(10)] == [0.0] * 10
    assert limiter.take("a") == pytest.approx(6.0)  # one attempt refills every 60 / 10 s
    assert limiter.take("b") == 0.0  # another key has its own bucket
    clock.now += 3
    assert limiter.take("a") == pytest.approx(3.0)  # refused attempts do not count against it
    clock.now += 3
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(6.0)
    clock.now += 3600
    assert [limiter.take("a") for _ in range(10)] == [0.0] * 10  # full again, never more than full
    assert limiter.take("a") > 0


def test_the_table_of_buckets_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(attempts=1, window_seconds=60, max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        assert limiter.take(key) == 0.0
    assert limiter.take("a") > 0  # still remembered
    assert limiter.take("d") == 0.0  # forgets the least recently used: b
    assert limiter.take("c") > 0 and limiter.take("d") > 0
    assert limiter.take("b") == 0.0
    with pytest.raises(ValueError, match="attempts"):
        RateLimiter(attempts=0, window_seconds=60)


def test_clients_are_counted_by_address_and_ipv6_by_its_64() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("unknown") == "unknown"


def test_guard_settings_are_checked_at_construction() -> None:
    ok = Settings.from_env(
        {
            "RUNSTREAM_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1",
            "RUNSTREAM_ALLOWED_HOSTS": "Runs.LAN,*",
            "RUNSTREAM_SESSION_MAX_AGE_SECONDS": "600",
            "RUNSTREAM_BODY_TIMEOUT_SECONDS": "5",
        }
    )
    assert ok.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")
    assert ok.allowed_hosts == ("runs.lan", "*")
    assert (ok.session_max_age_seconds, ok.body_timeout_seconds) == (600.0, 5.0)
    assert Settings.from_env(ok.as_env()) == ok
    for env, variable in (
        ({"RUNSTREAM_TRUSTED_PROXIES": "proxy.example"}, "RUNSTREAM_TRUSTED_PROXIES"),
        ({"RUNSTREAM_ALLOWED_HOSTS": "http://evil.example/"}, "RUNSTREAM_ALLOWED_HOSTS"),
        ({"RUNSTREAM_SESSION_MAX_AGE_SECONDS": "0"}, "RUNSTREAM_SESSION_MAX_AGE_SECONDS"),
        ({"RUNSTREAM_BODY_TIMEOUT_SECONDS": "-1"}, "RUNSTREAM_BODY_TIMEOUT_SECONDS"),
        (
            {"RUNSTREAM_COOKIE_SECRET": "s" * 40, "RUNSTREAM_COOKIE_SECRET_FILE": "/x"},
            "RUNSTREAM_COOKIE_SECRET_FILE",
        ),
    ):
        with pytest.raises(ConfigError, match=variable):
            Settings.from_env(env)
    with pytest.raises(ConfigError, match="RUNSTREAM_BODY_TIMEOUT_SECONDS"):
        dataclasses.replace(ok, body_timeout_seconds=float("inf"))
    secret = Settings.from_env({"RUNSTREAM_COOKIE_SECRET": "s" * 40})
    assert "s" * 40 not in repr(secret) and Settings.from_env(secret.as_env()).cookie_secret == "s" * 40
