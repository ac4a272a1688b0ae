"""The harness itself: the emulator starts and the official SDK can read the seeded account."""

import cloudflare


def test_the_sdk_reads_the_seeded_account(emu):
    cf = cloudflare.Cloudflare(
        api_email=emu["CLOUDFLARE_EMAIL"],
        api_key=emu["CLOUDFLARE_GLOBAL_KEY"],
        base_url=emu.base_url,
        max_retries=0,
    )
    account = cf.accounts.get(account_id=emu["CLOUDFLARE_ACCOUNT_ID"])
    assert account.id == emu["CLOUDFLARE_ACCOUNT_ID"]
