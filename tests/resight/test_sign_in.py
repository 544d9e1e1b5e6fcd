"""Signing in: django-axes locks a username+address after repeated wrong passwords on the login page and the
API token endpoint alike, DRF throttles the token endpoint, and django-rest-knox tokens expire, are listed
without their secret and are revoked by logout, logoutall, their owner, a password change or deactivation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.db.models import F
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.conftest import PASSWORD, make_user

LIMIT = 5
COOL_OFF = timedelta(minutes=15)
WRONG = "not-the-password"


@pytest.fixture(autouse=True)
def _lockout_settings(settings) -> None:
    # The figures the tests count with, whatever RESIGHT_LOGIN_* the environment sets.
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = COOL_OFF


@pytest.fixture
def ranger(db) -> User:
    return make_user("ranger")


def page_login(client: Client, password: str, username: str = "ranger"):
    return client.post("/login/", {"username": username, "password": password})


def token_request(client: APIClient, password: str, username: str = "ranger", fmt: str = "json"):
    return client.post("/api/auth/token/", {"username": username, "password": password}, format=fmt)


def issue_token(username: str = "ranger") -> str:
    response = token_request(APIClient(), PASSWORD, username)
    assert response.status_code == 200, response.content
    return response.json()["token"]


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def works(token: str) -> bool:
    status = with_token(token).get("/api/projects/").status_code
    assert status in (200, 401), status
    return status == 200


def let_time_pass(delta: timedelta) -> None:
    """Moves the recorded failures back in time: the cool-off is measured from the last one."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - delta)


def test_after_five_wrong_passwords_the_login_page_answers_429_even_to_the_right_password(ranger) -> None:
    browser = Client()
    for _ in range(LIMIT - 1):
        response = page_login(browser, WRONG)
        assert response.status_code == 200
        assert "didn't match" in response.content.decode()
    locking = page_login(browser, WRONG)  # the fifth failure locks, and says so
    assert locking.status_code == 429
    sixth = page_login(browser, PASSWORD)
    assert sixth.status_code == 429
    assert sixth["Content-Type"].startswith("text/html")
    page = sixth.content.decode()
    assert "Too many failed sign-ins" in page and "ranger" in page and "15 minutes" in page
    assert "_auth_user_id" not in browser.session
    assert browser.get("/").status_code == 302  # still signed out
    # The lock is for this username from this address: neither another address nor another user is held.
    assert page_login(Client(REMOTE_ADDR="10.1.2.3"), PASSWORD).status_code == 302
    make_user("tracker")
    assert page_login(Client(), PASSWORD, username="tracker").status_code == 302


def test_the_login_page_lets_the_right_password_in_again_once_the_cool_off_has_passed(ranger) -> None:
    browser = Client()
    for _ in range(LIMIT):
        page_login(browser, WRONG)
    let_time_pass(COOL_OFF - timedelta(minutes=1))
    assert page_login(browser, PASSWORD).status_code == 429  # not yet, and this attempt restarts the wait
    let_time_pass(COOL_OFF - timedelta(minutes=1))
    assert page_login(browser, PASSWORD).status_code == 429
    let_time_pass(COOL_OFF + timedelta(seconds=1))
    response = page_login(browser, PASSWORD)
    assert response.status_code == 302
    assert browser.session["_auth_user_id"] == str(ranger.pk)


def test_a_successful_sign_in_on_the_login_page_forgets_the_earlier_failures(ranger) -> None:
    browser = Client()
    for _ in range(LIMIT - 1):
        page_login(browser, WRONG)
    assert page_login(browser, PASSWORD).status_code == 302
    assert not AccessAttempt.objects.exists()
    browser.post("/logout/")
    for _ in range(LIMIT - 1):
        assert page_login(browser, WRONG).status_code == 200  # a fresh count: not locked at the fifth
    assert page_login(browser, PASSWORD).status_code == 302


def test_after_five_wrong_passwords_the_token_endpoint_answers_a_json_429_even_to_the_right_password(
    ranger,
) -> None:
    client = APIClient()
    for _ in range(LIMIT - 1):
        response = token_request(client, WRONG)
        assert response.status_code == 400
        assert response.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
    assert token_request(client, WRONG).status_code == 429
    sixth = token_request(client, PASSWORD)
    assert sixth.status_code == 429
    assert sixth["Content-Type"] == "application/json"
    assert sixth.json()["detail"].startswith("Too many failed sign-in attempts")
    assert sixth["Retry-After"] == str(int(COOL_OFF.total_seconds()))
    assert not AuthToken.objects.exists()
    # One count for the pair, wherever the password is tried: the login page is locked too.
    assert page_login(Client(), PASSWORD).status_code == 429
    let_time_pass(COOL_OFF + timedelta(seconds=1))
    assert token_request(client, PASSWORD).status_code == 200


def test_wrong_passwords_on_the_login_page_and_the_token_endpoint_add_up(ranger) -> None:
    for _ in range(LIMIT - 2):
        page_login(Client(), WRONG)
    assert token_request(APIClient(), WRONG).status_code == 400
    assert token_request(APIClient(), WRONG).status_code == 429


def test_a_username_longer_than_axes_stores_is_counted_cut_short_on_every_sign_in_surface(ranger) -> None:
    # axes records a failed sign-in's username in a 255-character column: a longer one was a 500 on the
    # login page, the admin's and the token endpoint.
    long_name = "r" * 300
    assert token_request(APIClient(), WRONG, username=long_name).status_code == 400
    assert page_login(Client(), WRONG, username=long_name).status_code == 200
    admin = Client().post("/admin/login/", {"username": long_name, "password": WRONG})
    assert admin.status_code == 200
    attempt = AccessAttempt.objects.get()
    assert attempt.username == long_name[:255] and attempt.failures_since_start == 3
    assert token_request(APIClient(), PASSWORD, username="ranger").status_code == 200


def test_a_token_issued_forgets_the_earlier_failures(ranger) -> None:
    client = APIClient()
    for _ in range(LIMIT - 1):
        token_request(client, WRONG)
    assert token_request(client, PASSWORD).status_code == 200
    assert not AccessAttempt.objects.exists()


def test_the_token_endpoint_throttles_a_client_after_twenty_requests_a_minute(ranger) -> None:
    client = APIClient()
    for _ in range(20):
        assert token_request(client, PASSWORD).status_code == 200
    throttled = token_request(client, PASSWORD)
    assert throttled.status_code == 429
    assert throttled.json()["detail"].startswith("Request was throttled.")
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert AuthToken.objects.count() == 20
    assert token_request(APIClient(REMOTE_ADDR="10.1.2.3"), PASSWORD).status_code == 200  # per client


def test_a_token_from_a_form_post_authenticates_api_requests_until_it_expires(ranger, settings) -> None:
    before = timezone.now()
    response = token_request(APIClient(), PASSWORD, fmt="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"token", "expiry"}
    expiry = AuthToken.objects.get().expiry
    ttl = settings.REST_KNOX["TOKEN_TTL"]
    assert before + ttl <= expiry <= timezone.now() + ttl
    assert works(body["token"])
    AuthToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))
    assert not works(body["token"])
    assert not AuthToken.objects.exists()  # knox deletes the expired token it was shown


def test_the_token_lifetime_follows_the_setting(ranger, settings) -> None:
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(hours=2)}
    issue_token()
    expiry = AuthToken.objects.get().expiry
    assert abs(expiry - (timezone.now() + timedelta(hours=2))) < timedelta(minutes=1)


def test_a_token_created_already_expired_is_refused(ranger) -> None:
    _, token = AuthToken.objects.create(user=ranger, expiry=timedelta(seconds=-1))
    assert not works(token)


def test_logout_revokes_the_token_used_and_only_that_one(ranger) -> None:
    used, other = issue_token(), issue_token()
    assert with_token(used).post("/api/auth/logout/").status_code == 204
    assert not works(used)
    assert works(other)


def test_logoutall_revokes_every_token_of_the_user_and_no_one_elses(ranger) -> None:
    make_user("tracker")
    used, other, someone_elses = issue_token(), issue_token(), issue_token("tracker")
    assert with_token(used).post("/api/auth/logoutall/").status_code == 204
    assert not works(used)
    assert not works(other)
    assert works(someone_elses)


def test_the_token_list_shows_the_users_own_live_tokens_without_their_secret(ranger) -> None:
    make_user("tracker")
    first, second, someone_elses = issue_token(), issue_token(), issue_token("tracker")
    AuthToken.objects.create(user=ranger, expiry=timedelta(seconds=-1))
    response = with_token(first).get("/api/auth/tokens/")
    assert response.status_code == 200
    tokens = response.json()["results"]
    assert {t["token_key"] for t in tokens} == {first[:15], second[:15]}
    assert all(set(t) == {"token_key", "created", "expiry"} and t["expiry"] for t in tokens)
    text = response.content.decode()
    for secret in (first, second, someone_elses):
        assert secret not in text
    for digest in AuthToken.objects.values_list("digest", flat=True):
        assert digest not in text
    assert APIClient().get("/api/auth/tokens/").status_code == 401


def test_a_token_can_be_revoked_by_its_owner_and_by_no_one_else(ranger) -> None:
    make_user("tracker")
    mine, spare, theirs = issue_token(), issue_token(), issue_token("tracker")
    client = with_token(mine)
    assert client.delete(f"/api/auth/tokens/{theirs[:15]}/").status_code == 404
    assert works(theirs)
    assert client.delete("/api/auth/tokens/000000000000000/").status_code == 404
    assert client.delete(f"/api/auth/tokens/{spare[:15]}/").status_code == 204
    assert not works(spare)
    assert works(mine)
    assert APIClient().delete(f"/api/auth/tokens/{mine[:15]}/").status_code == 401
    assert works(mine)


def test_a_password_change_revokes_the_users_tokens(ranger) -> None:
    make_user("tracker")
    mine, theirs = issue_token(), issue_token("tracker")
    ranger.set_password("a-brand-new-password-456")
    ranger.save()
    assert not works(mine)
    assert works(theirs)


def test_signing_in_again_keeps_the_users_tokens(ranger) -> None:
    token = issue_token()
    assert page_login(Client(), PASSWORD).status_code == 302  # writes last_login, not the password
    issue_token()
    assert works(token)


def test_deactivating_a_user_revokes_their_tokens_for_good(ranger) -> None:
    token = issue_token()
    ranger.is_active = False
    ranger.save()
    assert not AuthToken.objects.filter(user=ranger).exists()
    ranger.is_active = True
    ranger.save()
    assert not works(token)
