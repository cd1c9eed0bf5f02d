"""`users(search, first, after)` and `user(id)` over GraphQL."""

from __future__ import annotations

import pytest

from tests.chat_world import fast_user, gid

pytestmark = pytest.mark.django_db

USERS = """
query Users($search: String, $first: Int, $after: String) {
  users(search: $search, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { username displayName email } }
  }
}
"""
USER = "query User($id: ID!) { user(id: $id) { id username displayName email isStaff } }"


def usernames(body) -> list[str]:
    return [e["node"]["username"] for e in body["data"]["users"]["edges"]]


def test_pages_through_other_users_by_username(gql):
    me = fast_user("me")
    for i in range(25):
        fast_user(f"u{i:02}")
    first = gql(USERS, {}, user=me)
    assert usernames(first) == [f"u{i:02}" for i in range(20)]  # default page size 20, me excluded
    assert first["data"]["users"]["totalCount"] == 25
    assert first["data"]["users"]["pageInfo"]["hasNextPage"] is True
    rest = gql(USERS, {"after": first["data"]["users"]["pageInfo"]["endCursor"]}, user=me)
    assert usernames(rest) == [f"u{i:02}" for i in range(20, 25)]
    assert rest["data"]["users"]["pageInfo"]["hasNextPage"] is False


def test_search_by_username_or_display_name_case_insensitively(gql):
    me = fast_user("me")
    fast_user("alice", display_name="Wonder")
    fast_user("bob", display_name="Builder")
    fast_user("wanda")
    fast_user("inactive_wonder", is_active=False)
    assert usernames(gql(USERS, {"search": "WON"}, user=me)) == ["alice"]
    assert usernames(gql(USERS, {"search": "b"}, user=me)) == ["bob"]


def test_email_only_for_oneself_and_staff(gql):
    me = fast_user("me")
    staff = fast_user("staffer", is_staff=True)
    other = fast_user("other", display_name="Other")
    assert gql(USER, {"id": gid("User", other.pk)}, user=me) == {
        "data": {
            "user": {
                "id": gid("User", other.pk),
                "username": "other",
                "displayName": "Other",
                "email": None,
                "isStaff": False,
            }
        }
    }
    assert gql(USER, {"id": gid("User", other.pk)}, user=staff)["data"]["user"]["email"] == "other@example.com"
    assert gql(USER, {"id": gid("User", me.pk)}, user=me)["data"]["user"]["email"] == "me@example.com"


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"first": 101}, "BAD_USER_INPUT"),
        ({"first": -1}, "BAD_USER_INPUT"),
        ({"after": "not-a-cursor"}, "BAD_USER_INPUT"),
    ],
)
def test_bad_paging_arguments(gql, variables, code):
    me = fast_user("me")
    body = gql(USERS, variables, user=me)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == [code]


def test_unknown_inactive_or_foreign_ids(gql):
    me = fast_user("me")
    gone = fast_user("gone", is_active=False)
    for value in (gid("User", gone.pk), gid("User", 999999), gid("Room", me.pk)):
        body = gql(USER, {"id": value}, user=me)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert body["errors"][0]["message"] in ("User not found.",)


def test_anonymous_callers_are_unauthenticated(gql):
    fast_user("someone")
    body = gql(USERS, {})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
