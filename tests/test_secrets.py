"""mask_secrets: passwords in URLs and key=value DSNs never survive."""

from __future__ import annotations

import pytest

from dbcron.secrets import mask_secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "postgresql+psycopg://app:s3cret@db:5432/sales",
            "postgresql+psycopg://app:***@db:5432/sales",
        ),
        (
            "mysql+pymysql://root:pw@127.0.0.1/x?charset=utf8mb4",
            "mysql+pymysql://root:***@127.0.0.1/x?charset=utf8mb4",
        ),
        ("redis://:onlypass@cache:6379/0", "redis://:***@cache:6379/0"),
        ("smtp://u:p%40ss@mail", "smtp://u:***@mail"),
        ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:pa:ss@host/db", "postgresql://u:***@host/db"),
        ("postgresql://bob:pa/ss@db/sales", "postgresql://bob:***@db/sales"),
        ("mysql://u:a?b#c@h:3306/d?charset=utf8", "mysql://u:***@h:3306/d?charset=utf8"),
        (
            "error connecting to 'postgresql://a:b@h/d': refused",
            "error connecting to 'postgresql://a:***@h/d': refused",
        ),
        ("two urls a://u:x@h and b://v:y@k", "two urls a://u:***@h and b://v:***@k"),
        ("host=db user=app password=s3cret dbname=x", "host=db user=app password=*** dbname=x"),
        ("host=db password='s3 cret' port=5432", "host=db password='***' port=5432"),
        ('Password = "quoted"', 'Password = "***"'),
        ("DRIVER={x};SERVER=h;UID=u;PWD=s3cret;", "DRIVER={x};SERVER=h;UID=u;PWD=***;"),
        ("sqlite:///x.db?password=abc&mode=ro", "sqlite:///x.db?password=***&mode=ro"),
        ("DBCRON_SMTP_PASSWORD=hunter2", "DBCRON_SMTP_PASSWORD=***"),
        ("db_passwd=hunter2, next", "db_passwd=***, next"),
    ],
)
def test_masks(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sqlite:////var/lib/dbcron/dbcron.db",
        "postgresql://app@db:5432/sales",
        "http://host:8080/path",
        "https://example.com/a@b",
        "user=app host=db",
        "the password is checked by the server",
        "password=",
        "ran daily-sales: 42 rows in 1.5s",
    ],
)
def test_leaves_text_without_secrets_alone(text: str) -> None:
    assert mask_secrets(text) == text


@pytest.mark.parametrize(
    "text", ["a://u:x@h", "password='x'", "password=x;PWD=y", "a://u:***@h password=***"]
)
def test_idempotent(text: str) -> None:
    once = mask_secrets(text)
    assert mask_secrets(once) == once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bad config {'host': 'db', 'password': 'hunter2'}",
         "bad config {'host': 'db', 'password': '***'}"),
        ('{"user": "u", "db_password": "hun\\"ter2"}', '{"user": "u", "db_password": "***"}'),
        ("mssql+pyodbc:///?odbc_connect=DRIVER%3D%7Bx%7D%3BUID%3Du%3BPWD%3Dhunter2%3BDB%3Dd",
         "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7Bx%7D%3BUID%3Du%3BPWD%3D***%3BDB%3Dd"),
        ("DRIVER={x};UID=u;PWD={pa;ss};DATABASE=d", "DRIVER={x};UID=u;PWD={***};DATABASE=d"),
    ],
)
def test_masks_by_structure(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected


def test_a_remembered_secret_is_masked_only_as_a_whole_token() -> None:
    from dbcron.secrets import remember

    remember("postgres")
    text = "postgresql+psycopg://app:***@h: password for postgres refused; mssql+pyodbc ok"
    assert mask_secrets(text) == (
        "postgresql+psycopg://app:***@h: password for *** refused; mssql+pyodbc ok"
    )


def test_the_auth_plain_blob_and_base64_password_are_masked() -> None:
    import base64

    from dbcron.secrets import remember_login

    remember_login("mailer", "Sm7p-secret")
    blob = base64.b64encode(b"\0mailer\0Sm7p-secret").decode()
    single = base64.b64encode(b"Sm7p-secret").decode()
    assert mask_secrets(f"535 5.7.8 rejected {blob} and {single}.") == (
        "535 5.7.8 rejected *** and ***."
    )


def test_mask_value_masks_password_keys_and_urls() -> None:
    from dbcron.secrets import mask_value

    assert mask_value({"url": "postgresql://u:pw12@h/d", "Password": "x", "n": 3,
                       "items": [{"secret": "y"}, "a://b:c@d"]}) == {
        "url": "postgresql://u:***@h/d", "Password": "***", "n": 3,
        "items": [{"secret": "***"}, "a://b:***@d"],
    }
