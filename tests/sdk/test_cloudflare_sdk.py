"""The official Cloudflare Python SDK (pinned in requirements.txt) against `cfsetup emulator`.

It calls every endpoint cfsetup uses and checks that each answer parses into the SDK's own types
(typed attributes, never dicts), and that the errors cfsetup relies on raise the SDK's typed
exceptions with the right codes. The SDK was written by no one here, so a mistake shared by
cfsetup's client and the emulator shows up here. Where the SDK cannot parse an answer, the
emulator is wrong. Facts: docs/cloudflare-api.md and docs/peers.md §5: the SDK
sends `condition.request_ip`, uploads modules as parts named `files`, pages until an empty page,
and retries 409/429/5xx unless told not to (`max_retries=0` here).
"""

import json
import urllib.request
import uuid

import cloudflare
import pytest
from cloudflare.types.accounts import Account
from cloudflare.types.custom_hostnames import (
    CustomHostnameEditResponse,
    QuotaGetResponse,
    CustomHostnameCreateResponse,
    CustomHostnameGetResponse,
    CustomHostnameListResponse,
)
from cloudflare.types.r2 import Bucket
from cloudflare.types.shared import Token
from cloudflare.types.user.tokens import PermissionGroupListResponse
from cloudflare.types.workers import ScriptUpdateResponse
from cloudflare.types.workers import RouteCreateResponse, RouteListResponse
from cloudflare.types.zones import Zone

ACCOUNT = "com.cloudflare.api.account"
ZONE = "com.cloudflare.api.account.zone"


def sdk(emu, token=None):
    """A client with the Global API Key, or with a token."""
    if token:
        return cloudflare.Cloudflare(api_token=token, base_url=emu.base_url, max_retries=0)
    return cloudflare.Cloudflare(
        api_email=emu["CLOUDFLARE_EMAIL"],
        api_key=emu["CLOUDFLARE_GLOBAL_KEY"],
        base_url=emu.base_url,
        max_retries=0,
    )


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def code_of(err):
    """The first Cloudflare error code in an SDK exception's body."""
    body = err.body
    assert isinstance(body, dict), body
    return body["errors"][0]["code"]


@pytest.fixture(scope="module")
def ids(emu):
    return emu["CLOUDFLARE_ACCOUNT_ID"], emu["CLOUDFLARE_ZONE_ID"]


@pytest.fixture(scope="module")
def admin(emu, ids):
    """A token holding what the platform needs, minted with the SDK itself."""
    account, zone = ids
    cf = sdk(emu)
    groups = {(g.name, tuple(g.scopes)): g.id for g in cf.user.tokens.permission_groups.list()}
    acct = [
        {"id": groups[(n, (ACCOUNT,))]}
        for n in [
            "Account Settings Read",
            "Workers R2 Storage Write",
            "Workers Scripts Read",
            "Workers Scripts Write",
        ]
    ]
    zn = [
        {"id": groups[(n, (ZONE,))]}
        for n in [
            "Workers Routes Write",
            "Zone Read",
            "SSL and Certificates Read",
            "SSL and Certificates Write",
        ]
    ]
    created = cf.user.tokens.create(
        name=unique("sdk-admin"),
        policies=[
            {"effect": "allow", "resources": {f"{ACCOUNT}.{account}": "*"}, "permission_groups": acct},
            {"effect": "allow", "resources": {f"{ZONE}.{zone}": "*"}, "permission_groups": zn},
        ],
    )
    return created.value


# ---- tokens ----


def test_tokens_permission_groups_create_verify_get_list_roll_delete(emu, ids):
    account, zone = ids
    cf = sdk(emu)

    groups = list(cf.user.tokens.permission_groups.list())
    assert groups and all(isinstance(g, PermissionGroupListResponse) for g in groups)
    by_name = {(g.name, tuple(g.scopes)): g.id for g in groups}
    r2_write = by_name[("Workers R2 Storage Write", (ACCOUNT,))]
    routes_write = by_name[("Workers Routes Write", (ZONE,))]
    only_routes = list(
        cf.user.tokens.permission_groups.list(name="Workers Routes Write", scope=ZONE)
    )
    assert [g.id for g in only_routes] == [routes_write]

    name = unique("sdk-token")
    created = cf.user.tokens.create(
        name=name,
        policies=[
            {
                "effect": "allow",
                "resources": {f"{ACCOUNT}.{account}": "*"},
                "permission_groups": [{"id": r2_write}],
            },
            {
                "effect": "allow",
                "resources": {f"{ZONE}.{zone}": "*"},
                "permission_groups": [{"id": routes_write}],
            },
        ],
        condition={"request_ip": {"in": ["127.0.0.0/8"], "not_in": ["127.0.0.2/32"]}},
        expires_on="2099-01-01T00:00:00Z",
    )
    assert created.id and created.name == name
    assert isinstance(created.value, str) and created.value
    assert created.status == "active"
    # The condition comes back under the key the SDK sent, and parses into its type.
    assert created.condition is not None
    assert created.condition.request_ip is not None
    assert created.condition.request_ip.in_ == ["127.0.0.0/8"]
    assert created.condition.request_ip.not_in == ["127.0.0.2/32"]
    assert [p.effect for p in created.policies] == ["allow", "allow"]
    assert created.policies[0].permission_groups[0].id == r2_write
    assert created.policies[0].permission_groups[0].name == "Workers R2 Storage Write"

    verified = sdk(emu, created.value).user.tokens.verify()
    assert verified.id == created.id and verified.status == "active"

    got = cf.user.tokens.get(created.id)
    assert isinstance(got, Token)
    assert got.id == created.id and got.name == name
    assert got.condition.request_ip.in_ == ["127.0.0.0/8"]
    assert got.expires_on is not None and got.expires_on.year == 2099

    listed = list(cf.user.tokens.list())
    assert all(isinstance(t, Token) for t in listed)
    assert created.id in [t.id for t in listed]

    new_value = cf.user.tokens.value.update(created.id)
    assert isinstance(new_value, str) and new_value != created.value
    assert sdk(emu, new_value).user.tokens.verify().id == created.id
    with pytest.raises(cloudflare.AuthenticationError) as bad:
        sdk(emu, created.value).user.tokens.verify()
    assert code_of(bad.value) == 1000

    deleted = cf.user.tokens.delete(created.id)
    assert deleted.id == created.id
    with pytest.raises(cloudflare.NotFoundError):
        cf.user.tokens.get(created.id)


def test_token_auto_pagination_terminates(emu):
    cf = sdk(emu)
    for _ in range(3):
        emu.mint_token(
            unique("sdk-page"),
            [
                {
                    "effect": "allow",
                    "resources": {f"{ACCOUNT}.{emu['CLOUDFLARE_ACCOUNT_ID']}": "*"},
                    "permission_groups": [
                        {"id": emu.permission_group("Account Settings Read", ACCOUNT)}
                    ],
                }
            ],
        )
    pages = list(cf.user.tokens.list(per_page=2).iter_pages())
    assert len(pages) >= 2
    seen = [t.id for p in pages for t in p.result]
    assert len(seen) == len(set(seen)) >= 3


# ---- accounts and zones ----


def test_accounts_and_zones(emu, ids, admin):
    account, zone = ids
    cf = sdk(emu, admin)
    a = cf.accounts.get(account_id=account)
    assert isinstance(a, Account) and a.id == account and a.name

    z = cf.zones.get(zone_id=zone)
    assert isinstance(z, Zone) and z.id == zone and z.name
    assert z.account.id == account

    zones = list(cf.zones.list())
    assert [x.id for x in zones] == [zone]
    assert all(isinstance(x, Zone) for x in zones)
    named = list(cf.zones.list(name=z.name))
    assert [x.id for x in named] == [zone]


# ---- R2 buckets ----


def test_r2_buckets_create_list_get_delete(emu, ids, admin):
    account, _ = ids
    cf = sdk(emu, admin)
    name = unique("sdk-bucket")
    created = cf.r2.buckets.create(account_id=account, name=name, location_hint="weur")
    assert isinstance(created, Bucket) and created.name == name
    assert created.location == "weur"

    listed = cf.r2.buckets.list(account_id=account)
    assert name in [b.name for b in listed.buckets]
    assert all(isinstance(b, Bucket) for b in listed.buckets)

    got = cf.r2.buckets.get(name, account_id=account)
    assert isinstance(got, Bucket) and got.name == name and got.creation_date

    eu = cf.r2.buckets.create(account_id=account, name=name, cf_r2_jurisdiction="eu")
    assert eu.name == name and eu.jurisdiction == "eu"
    cf.r2.buckets.delete(name, account_id=account, cf_r2_jurisdiction="eu")

    with pytest.raises(cloudflare.ConflictError) as dup:
        cf.r2.buckets.create(account_id=account, name=name)
    assert code_of(dup.value) == 10004

    cf.r2.buckets.delete(name, account_id=account)
    with pytest.raises(cloudflare.NotFoundError) as gone:
        cf.r2.buckets.get(name, account_id=account)
    assert code_of(gone.value) == 10006


# ---- Workers: upload, list, settings, content, routes ----

MODULE = b"export default { fetch() { return new Response('sdk') } };\n"


def test_module_worker_upload_list_settings_content_and_routes(emu, ids, admin):
    account, zone = ids
    cf = sdk(emu, admin)
    bucket = unique("sdk-sites")
    cf.r2.buckets.create(account_id=account, name=bucket)
    name = unique("sdk-worker")

    uploaded = cf.workers.scripts.update(
        name,
        account_id=account,
        metadata={
            "main_module": "index.js",
            "compatibility_date": "2025-01-01",
            "bindings": [
                {"type": "r2_bucket", "name": "SITES", "bucket_name": bucket},
                {"type": "plain_text", "name": "PLATFORM_DOMAIN", "text": "getai.page"},
            ],
        },
        files=[("index.js", MODULE, "application/javascript+module")],
    )
    assert isinstance(uploaded, ScriptUpdateResponse)
    assert uploaded.id == name and uploaded.etag
    assert uploaded.has_modules is True

    scripts = list(cf.workers.scripts.list(account_id=account))
    assert name in [s.id for s in scripts]

    settings = cf.workers.scripts.script_and_version_settings.get(name, account_id=account)
    assert settings.compatibility_date == "2025-01-01"
    kinds = {b.name: b.type for b in settings.bindings}
    assert kinds == {"SITES": "r2_bucket", "PLATFORM_DOMAIN": "plain_text"}
    sites = next(b for b in settings.bindings if b.name == "SITES")
    assert sites.bucket_name == bucket

    content = cf.workers.scripts.content.get(name, account_id=account)
    # The GET answer names its entry module in cf-entrypoint (wrangler versions/secrets/index.ts);
    # CF-WORKER-MAIN-MODULE-PART is a request header of content.ts update(), never sent back.
    assert content.headers["cf-entrypoint"] == "index.js"
    assert "cf-worker-main-module-part" not in content.headers
    assert content.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert MODULE in content.read()

    pattern = f"sdk-{uuid.uuid4().hex[:6]}.getai.page/*"
    route = cf.workers.routes.create(zone_id=zone, pattern=pattern, script=name)
    assert isinstance(route, RouteCreateResponse)
    assert route.id and route.pattern == pattern and route.script == name
    routes = list(cf.workers.routes.list(zone_id=zone))
    assert all(isinstance(r, RouteListResponse) for r in routes)
    assert (route.id, pattern, name) in [(r.id, r.pattern, r.script) for r in routes]
    with pytest.raises(cloudflare.ConflictError) as dup:
        cf.workers.routes.create(zone_id=zone, pattern=pattern, script=name)
    assert code_of(dup.value) == 10020
    deleted = cf.workers.routes.delete(route.id, zone_id=zone)
    assert deleted.id == route.id
    assert route.id not in [r.id for r in cf.workers.routes.list(zone_id=zone)]

    cf.workers.scripts.delete(name, account_id=account, force=True)
    with pytest.raises(cloudflare.NotFoundError):
        cf.workers.scripts.script_and_version_settings.get(name, account_id=account)


# ---- custom hostnames and the fallback origin ----


def test_custom_hostnames_and_fallback_origin(emu, ids, admin):
    _, zone = ids
    cf = sdk(emu, admin)
    host = f"shop-{uuid.uuid4().hex[:6]}.customer.com"
    created = cf.custom_hostnames.create(
        zone_id=zone,
        hostname=host,
        ssl={"method": "http", "type": "dv", "settings": {"min_tls_version": "1.2"}},
        custom_metadata={"tenant": "t1"},
    )
    assert isinstance(created, CustomHostnameCreateResponse)
    assert created.hostname == host and created.id
    assert created.status is not None
    assert created.ssl is not None and created.ssl.method == "http"
    assert created.ownership_verification is not None
    assert created.ownership_verification.name == f"_cf-custom-hostname.{host}"

    got = cf.custom_hostnames.get(created.id, zone_id=zone)
    assert isinstance(got, CustomHostnameGetResponse) and got.hostname == host

    by_name = list(cf.custom_hostnames.list(zone_id=zone, hostname={"exact": host}))
    assert [c.id for c in by_name] == [created.id]
    assert all(isinstance(c, CustomHostnameListResponse) for c in by_name)
    everything = list(cf.custom_hostnames.list(zone_id=zone))
    assert created.id in [c.id for c in everything]

    with pytest.raises(cloudflare.ConflictError) as dup:
        cf.custom_hostnames.create(zone_id=zone, hostname=host, ssl={"method": "http", "type": "dv"})
    assert code_of(dup.value) == 1406

    deleted = cf.custom_hostnames.delete(created.id, zone_id=zone)
    assert deleted.id == created.id
    with pytest.raises(cloudflare.NotFoundError) as gone:
        cf.custom_hostnames.get(created.id, zone_id=zone)
    assert code_of(gone.value) == 1436

    origin = cf.custom_hostnames.fallback_origin.update(zone_id=zone, origin="fallback.getai.page")
    assert origin.origin == "fallback.getai.page" and origin.status
    now = cf.custom_hostnames.fallback_origin.get(zone_id=zone)
    assert now.origin == "fallback.getai.page"
    cf.custom_hostnames.fallback_origin.delete(zone_id=zone)


def control(emu, method, path, body):
    """A call to the emulator's control endpoint (`/__emulator/…`)."""
    req = urllib.request.Request(
        emu.origin + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def test_custom_hostname_quota_txt_validation_and_the_patch_that_restarts_it(emu, ids, admin):
    _, zone = ids
    cf = sdk(emu, admin)
    quota = cf.custom_hostnames.quota.get(zone_id=zone)
    assert isinstance(quota, QuotaGetResponse)
    assert isinstance(quota.allocated, int) and isinstance(quota.hard_cap, int)
    assert isinstance(quota.used, int) and isinstance(quota.exceeded, bool)

    host = f"pre-{uuid.uuid4().hex[:6]}.customer.com"
    created = cf.custom_hostnames.create(zone_id=zone, hostname=host, ssl={"method": "txt", "type": "dv"})
    assert created.ssl.method == "txt"
    got = cf.custom_hostnames.get(created.id, zone_id=zone)
    records = got.ssl.validation_records
    assert records and records[0].txt_name == f"_acme-challenge.{host}" and records[0].txt_value
    assert got.ownership_verification.name == f"_cf-custom-hostname.{host}"
    assert got.ownership_verification.value

    # The same ssl again restarts validation with a new token; HTTP moves it to HTTP validation.
    edited = cf.custom_hostnames.edit(created.id, zone_id=zone, ssl={"method": "txt", "type": "dv"})
    assert isinstance(edited, CustomHostnameEditResponse)
    again = cf.custom_hostnames.get(created.id, zone_id=zone)
    assert again.ssl.validation_records[0].txt_value != records[0].txt_value
    moved = cf.custom_hostnames.edit(created.id, zone_id=zone, ssl={"method": "http", "type": "dv"})
    assert moved.ssl.method == "http"

    # An active certificate's expiry parses as a datetime.
    control(emu, "POST", f"/__emulator/custom_hostnames/{host}",
            {"status": "active", "ssl": {"status": "active", "expires_on": "2027-03-01T00:00:00Z"}})
    active = cf.custom_hostnames.get(created.id, zone_id=zone)
    assert active.ssl.expires_on.year == 2027

    # At the hard cap a create is refused with 1405.
    used = cf.custom_hostnames.quota.get(zone_id=zone).used
    control(emu, "PUT", "/__emulator/quota", {"allocated": 1, "hard_cap": used})
    full = cf.custom_hostnames.quota.get(zone_id=zone)
    assert full.exceeded is (used > 1) and full.hard_cap == used
    with pytest.raises(cloudflare.PermissionDeniedError) as refused:
        cf.custom_hostnames.create(zone_id=zone, hostname=f"x-{host}", ssl={"method": "http", "type": "dv"})
    assert code_of(refused.value) == 1405
    control(emu, "PUT", "/__emulator/quota", {"allocated": 100, "hard_cap": 50000})
    cf.custom_hostnames.delete(created.id, zone_id=zone)


# ---- errors ----


def test_a_missing_permission_is_permission_denied_10000(emu, ids):
    account, zone = ids
    _, zone_only = emu.mint_token(
        unique("sdk-zone-only"),
        [
            {
                "effect": "allow",
                "resources": {f"{ZONE}.{zone}": "*"},
                "permission_groups": [{"id": emu.permission_group("Zone Read", ZONE)}],
            }
        ],
    )
    cf = sdk(emu, zone_only)
    with pytest.raises(cloudflare.PermissionDeniedError) as denied:
        cf.accounts.get(account_id=account)
    assert denied.value.status_code == 403
    assert code_of(denied.value) == 10000
    with pytest.raises(cloudflare.PermissionDeniedError) as denied:
        cf.r2.buckets.create(account_id=account, name=unique("nope"))
    assert code_of(denied.value) == 10000


def test_a_bad_token_is_a_typed_error_with_code_1000(emu, ids):
    account, _ = ids
    cf = sdk(emu, "cfut_" + "a" * 40 + "abcdef")
    # The emulator answers an unknown token with 401 (docs/cloudflare-api.md §1: 400 or 401 seen).
    with pytest.raises(cloudflare.AuthenticationError) as bad:
        cf.user.tokens.verify()
    assert bad.value.status_code == 401
    assert code_of(bad.value) == 1000
    with pytest.raises(cloudflare.AuthenticationError) as bad:
        cf.accounts.get(account_id=account)
    assert code_of(bad.value) == 1000


def test_an_ip_restricted_token_used_from_elsewhere_is_9109(emu, ids):
    account, _ = ids
    cf = sdk(emu)
    created = cf.user.tokens.create(
        name=unique("sdk-elsewhere"),
        policies=[
            {
                "effect": "allow",
                "resources": {f"{ACCOUNT}.{account}": "*"},
                "permission_groups": [
                    {"id": emu.permission_group("Account Settings Read", ACCOUNT)}
                ],
            }
        ],
        condition={"request_ip": {"in": ["203.0.113.0/24"]}},
    )
    elsewhere = sdk(emu, created.value)
    for call in (
        lambda: elsewhere.user.tokens.verify(),
        lambda: elsewhere.accounts.get(account_id=account),
    ):
        with pytest.raises(cloudflare.PermissionDeniedError) as refused:
            call()
        assert refused.value.status_code == 403
        assert code_of(refused.value) == 9109
        message = refused.value.body["errors"][0]["message"]
        assert message == "Cannot use the access token from location: 127.0.0.1"
    cf.user.tokens.delete(created.id)
