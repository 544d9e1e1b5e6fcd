"""The web server runs with the platform's configuration, which waitress itself accepts."""

from __future__ import annotations

from waitress.adjustments import Adjustments

from resight.management.commands.serve import server_options


def test_waitress_takes_the_whole_largest_zip_and_bounds_idle_connections(settings) -> None:
    adjusted = Adjustments(**server_options(threads=8))
    assert adjusted.max_request_body_size > settings.RESIGHT_MAX_ZIP_BYTES
    assert adjusted.channel_timeout == 60 and adjusted.threads == 8
    assert not adjusted.trusted_proxy  # no forwarded header is believed unless a proxy is configured


def test_behind_a_proxy_only_its_forwarded_for_names_the_client(settings) -> None:
    settings.RESIGHT_BEHIND_PROXY = True
    settings.RESIGHT_TRUSTED_PROXY = "10.0.0.2"
    adjusted = Adjustments(**server_options(threads=4))
    assert adjusted.trusted_proxy == "10.0.0.2"
    assert "x-forwarded-for" in adjusted.trusted_proxy_headers and adjusted.clear_untrusted_proxy_headers
