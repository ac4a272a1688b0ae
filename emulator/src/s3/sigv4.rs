//! AWS Signature Version 4 verification, written here on `hmac` + `sha2` so that a client's
//! signing crate is checked against an independent implementation (boto3 checks this one).
//!
//! Both forms are accepted: the `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
//! Signature=…` header, and the presigned query (`X-Amz-Algorithm`, `X-Amz-Credential`,
//! `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`). The canonical request
//! is method, canonical URI (the path percent-decoded, then URI-encoded again byte by byte with
//! only `A-Z a-z 0-9 - . _ ~` and `/` kept, once: S3 does not double-encode; so `/b/a(1)!.txt`
//! sent raw is canonicalised as `/b/a%281%29%21.txt`, and a signer that signs the raw wire form
//! fails, as on R2: openclaw/clawhub PR #2723 saw SignatureDoesNotMatch for a raw `!`. A raw `+`
//! in the path is a literal `+` (`%2B`), not a space: a choice, the same as the key decoding in
//! `ops`; AWS S3 has been seen reading it as a space, ngx_aws_auth #87, and R2 is silent), canonical query (every parameter but `X-Amz-Signature`, decoded, then each name and value
//! URI-encoded byte by byte with only `A-Z a-z 0-9 - . _ ~` kept, sorted), the signed headers as
//! `name:value\n` (values trimmed, inner runs of spaces collapsed, repeats joined by `,`), the
//! signed-header list, and the payload hash. The payload hash of a header-signed request is its
//! `x-amz-content-sha256` header, which must be listed in `SignedHeaders` (see
//! [`Signed::unsigned_content_sha256`]). That of a presigned request comes from the
//! `X-Amz-Content-Sha256` query parameter, else the `x-amz-content-sha256` header, else
//! `UNSIGNED-PAYLOAD`: AWS's own reading (aws/aws-sdk-go `aws/signer/v4/v4.go` `buildBodyDigest`,
//! PR #1976, issue #1974: "S3 requires the X-Amz-Content-Sha256 value to be a header if its value
//! is not UNSIGNED-PAYLOAD"), aws4fetch's (`hexBodyHash`) and MinIO's
//! (`cmd/signature-v4-utils.go` `getContentSha256Cksum`), docs/cloudflare-api.md §7 "Signing: use the
//! header form"; `Options.s3_presigned_payload_lenient` switches to s3s' reading, always
//! `UNSIGNED-PAYLOAD`. The string to sign is `AWS4-HMAC-SHA256\n<X-Amz-Date>\n<scope>\n<hex SHA-256 of the
//! canonical request>`; the key is `HMAC("AWS4"+secret, date) → region → "s3" → "aws4_request"`.
//! Sources: the Amazon S3 API reference, "Signature Calculations for the Authorization Header:
//! Transferring Payload in a Single Chunk" (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html,
//! whose GET Object example is the unit test below) and "Authenticating Requests: Using Query
//! Parameters" (…/API/sigv4-query-string-auth.html: presigned URLs sign `UNSIGNED-PAYLOAD`,
//! `X-Amz-Expires` at most 604800). R2 accepts region `auto` with `us-east-1` and empty as
//! aliases (docs/cloudflare-api.md §7 "Endpoints").

use super::S3Error;
use hmac::{Hmac, Mac};
use hyper::HeaderMap;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

/// How far `X-Amz-Date` may be from the server's clock (S3's 15 minutes).
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// The longest presigned URL S3 accepts: 7 days.
const MAX_EXPIRES: u64 = 7 * 24 * 3600;

/// Where the signature came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Header,
    Query,
}

/// A parsed signature, not yet checked.
#[derive(Debug, Clone)]
pub struct Signed {
    pub form: Form,
    pub access_key: String,
    scope: String,
    region: String,
    scope_date: String,
    amz_date: String,
    pub time: SystemTime,
    signed_headers: Vec<String>,
    signature: String,
    expires: Option<u64>,
    /// The payload hash that goes into the canonical request.
    pub payload: String,
}

/// What the server computed when a signature does not match, for the SignatureDoesNotMatch
/// body (AWS's and R2's: docs/cloudflare-api.md §7, WWBN/AVideo#9667). Neither holds the secret.
#[derive(Debug, Clone)]
pub struct Computed {
    pub canonical_request: String,
    pub string_to_sign: String,
}

/// "sigv4", "presigned" or "none", for the request log.
pub fn auth_kind(headers: &HeaderMap, query: &[(String, String)]) -> &'static str {
    if headers.contains_key("authorization") {
        "sigv4"
    } else if query.iter().any(|(k, _)| k == "X-Amz-Signature") {
        "presigned"
    } else {
        "none"
    }
}

/// The signature of a request, if it carries one.
/// `lenient_presigned_payload`: `Options.s3_presigned_payload_lenient` (a presigned request's
/// payload line is always `UNSIGNED-PAYLOAD`).
pub fn parse(
    headers: &HeaderMap,
    query: &[(String, String)],
    lenient_presigned_payload: bool,
) -> Result<Option<Signed>, S3Error> {
    let in_query = query
        .iter()
        .any(|(k, _)| k == "X-Amz-Signature" || k == "X-Amz-Algorithm");
    if headers.contains_key("authorization") && in_query {
        // AWS S3 refuses a request carrying both forms (400 InvalidArgument, "Only one auth
        // mechanism allowed"); R2 is silent, so this is a choice.
        return Err(S3Error::new(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified",
        ));
    }
    if let Some(value) = headers.get("authorization") {
        let text = value.to_str().map_err(|_| malformed_header("not ASCII"))?;
        return parse_header(text, headers).map(Some);
    }
    if in_query {
        return parse_query(query, headers, lenient_presigned_payload).map(Some);
    }
    Ok(None)
}

fn malformed_header(why: &str) -> S3Error {
    S3Error::new(
        400,
        "AuthorizationHeaderMalformed",
        format!("The authorization header is malformed; {why}"),
    )
}

fn malformed_query(why: &str) -> S3Error {
    S3Error::new(
        400,
        "AuthorizationQueryParametersError",
        format!("Query-string authentication is malformed; {why}"),
    )
}

fn parse_header(text: &str, headers: &HeaderMap) -> Result<Signed, S3Error> {
    let Some(rest) = text.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(S3Error::new(
            400,
            "InvalidArgument",
            "Unsupported Authorization Type: only AWS4-HMAC-SHA256 is accepted",
        ));
    };
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for item in rest.split(',') {
        match item.trim().split_once('=') {
            Some(("Credential", v)) => credential = Some(v.trim()),
            Some(("SignedHeaders", v)) => signed = Some(v.trim()),
            Some(("Signature", v)) => signature = Some(v.trim()),
            _ => {}
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(malformed_header(
            "it must have Credential, SignedHeaders and Signature",
        ));
    };
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            S3Error::new(
                403,
                "AccessDenied",
                "AWS authentication requires a valid Date or x-amz-date header",
            )
        })?;
    let payload = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            S3Error::new(
                400,
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
            )
        })?;
    check_payload(payload)?;
    build(
        Form::Header,
        credential,
        amz_date,
        signed,
        signature,
        None,
        payload,
    )
    .map_err(|why| malformed_header(&why))
}

/// A payload hash must be `UNSIGNED-PAYLOAD` or 64 hex digits (the `STREAMING-…` forms were
/// refused before the body was read).
fn check_payload(payload: &str) -> Result<(), S3Error> {
    if payload != "UNSIGNED-PAYLOAD" && !is_sha256_hex(payload) {
        return Err(S3Error::new(
            400,
            "InvalidArgument",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a valid sha256 value",
        ));
    }
    Ok(())
}

fn parse_query(
    query: &[(String, String)],
    headers: &HeaderMap,
    lenient_payload: bool,
) -> Result<Signed, S3Error> {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err(malformed_query("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let (Some(credential), Some(date), Some(expires), Some(signed), Some(signature)) = (
        get("X-Amz-Credential"),
        get("X-Amz-Date"),
        get("X-Amz-Expires"),
        get("X-Amz-SignedHeaders"),
        get("X-Amz-Signature"),
    ) else {
        return Err(malformed_query(
            "X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature are required",
        ));
    };
    let expires = expires
        .parse::<u64>()
        .ok()
        .filter(|e| (1..=MAX_EXPIRES).contains(e))
        .ok_or_else(|| malformed_query("X-Amz-Expires must be between 1 and 604800 seconds"))?;
    // The query parameter first, then the header, else UNSIGNED-PAYLOAD (MinIO
    // `getContentSha256Cksum`; aws-sdk-go `buildBodyDigest`). The parameter's name is matched
    // exactly, as MinIO's `r.Form[…]` does; a header name is case-insensitive.
    let payload = if lenient_payload {
        "UNSIGNED-PAYLOAD"
    } else {
        get("X-Amz-Content-Sha256")
            .or_else(|| {
                headers
                    .get("x-amz-content-sha256")
                    .and_then(|v| v.to_str().ok())
            })
            .unwrap_or("UNSIGNED-PAYLOAD")
    };
    check_payload(payload)?;
    build(
        Form::Query,
        credential,
        date,
        signed,
        signature,
        Some(expires),
        payload,
    )
    .map_err(|why| malformed_query(&why))
}

fn build(
    form: Form,
    credential: &str,
    amz_date: &str,
    signed: &str,
    signature: &str,
    expires: Option<u64>,
    payload: &str,
) -> Result<Signed, String> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, scope_date, region, service, terminator] = parts.as_slice() else {
        return Err(format!(
            "the Credential '{credential}' must be <key>/<date>/<region>/s3/aws4_request"
        ));
    };
    if !matches!(*region, "auto" | "us-east-1" | "") {
        return Err(format!("the region '{region}' is wrong; expecting 'auto'"));
    }
    if *service != "s3" || *terminator != "aws4_request" {
        return Err(format!(
            "the Credential '{credential}' must be <key>/<date>/<region>/s3/aws4_request"
        ));
    }
    let time = parse_amz_date(amz_date)
        .ok_or_else(|| format!("X-Amz-Date '{amz_date}' is not YYYYMMDD'T'HHMMSS'Z'"))?;
    if amz_date.get(..8) != Some(*scope_date) {
        return Err(format!(
            "the credential date '{scope_date}' does not match X-Amz-Date '{amz_date}'"
        ));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_ascii_lowercase).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err("SignedHeaders must include host".into());
    }
    Ok(Signed {
        form,
        access_key: access_key.to_string(),
        scope: format!("{scope_date}/{region}/s3/aws4_request"),
        region: region.to_string(),
        scope_date: scope_date.to_string(),
        amz_date: amz_date.to_string(),
        time,
        signed_headers,
        // Kept as sent: SigV4 signatures are lower-case hex, and an upper-case one does not match.
        signature: signature.to_string(),
        expires,
        payload: payload.to_string(),
    })
}

/// `YYYYMMDDTHHMMSSZ` → time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    if !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        return None;
    }
    let rfc = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    );
    humantime::parse_rfc3339(&rfc).ok()
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Signed {
    /// The clock checks: a header signature within 15 minutes of now (403
    /// `RequestTimeTooSkewed`, AWS's answer: a choice, R2's table is silent); a presigned URL not
    /// before its date less the skew (403 `AccessDenied`, AWS's: a choice) and not after its date
    /// plus `X-Amz-Expires` (R2 `r2/api/error-codes.mdx`: 10018 `ExpiredRequest`, HTTP 400).
    pub fn check_time(&self, now: SystemTime) -> Result<(), S3Error> {
        let ahead = self.time.duration_since(now).unwrap_or_default();
        let behind = now.duration_since(self.time).unwrap_or_default();
        match self.expires {
            None if ahead > MAX_SKEW || behind > MAX_SKEW => Err(S3Error::new(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the server's time is too large.",
            )),
            None => Ok(()),
            Some(_) if ahead > MAX_SKEW => Err(S3Error::new(
                403,
                "AccessDenied",
                "Request is not valid yet",
            )),
            Some(e) if behind > Duration::from_secs(e) => {
                Err(S3Error::new(400, "ExpiredRequest", "Request has expired"))
            }
            Some(_) => Ok(()),
        }
    }

    /// The canonical request and the string to sign the server computes for this request (no
    /// secret is needed for either).
    pub fn compute(
        &self,
        method: &str,
        raw_path: &str,
        query: &[(String, String)],
        headers: &HeaderMap,
    ) -> Computed {
        let canonical_request = self.canonical_request(method, raw_path, query, headers);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.amz_date,
            self.scope,
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        Computed {
            canonical_request,
            string_to_sign,
        }
    }

    /// The signature as sent.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// Checks the signature with this secret access key; on a mismatch, what was computed.
    pub fn verify(
        &self,
        method: &str,
        raw_path: &str,
        query: &[(String, String)],
        headers: &HeaderMap,
        secret: &str,
    ) -> Result<(), Box<Computed>> {
        let computed = self.compute(method, raw_path, query, headers);
        let mut key = hmac(
            format!("AWS4{secret}").as_bytes(),
            self.scope_date.as_bytes(),
        );
        key = hmac(&key, self.region.as_bytes());
        key = hmac(&key, b"s3");
        key = hmac(&key, b"aws4_request");
        let expected = hex::encode(hmac(&key, computed.string_to_sign.as_bytes()));
        if constant_time_eq(expected.as_bytes(), self.signature.as_bytes()) {
            Ok(())
        } else {
            Err(Box::new(computed))
        }
    }

    /// A header-signed request that sends `x-amz-content-sha256` without listing it in
    /// `SignedHeaders` (AWS's SigV4 header-auth page requires it; see
    /// `Options.s3_unsigned_content_sha256_lenient`). A presigned request is not held to it.
    pub fn unsigned_content_sha256(&self, headers: &HeaderMap) -> bool {
        self.form == Form::Header
            && headers.contains_key("x-amz-content-sha256")
            && !self
                .signed_headers
                .iter()
                .any(|h| h == "x-amz-content-sha256")
    }

    fn canonical_request(
        &self,
        method: &str,
        raw_path: &str,
        query: &[(String, String)],
        headers: &HeaderMap,
    ) -> String {
        // The canonical URI is URI-encode(percent-decode(path)), `/` kept, encoded once.
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(raw_path).collect();
        let uri = if decoded.is_empty() {
            "/".to_string()
        } else {
            uri_encode(&decoded, false)
        };
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| !(self.form == Form::Query && k == "X-Amz-Signature"))
            .map(|(k, v)| {
                (
                    uri_encode(k.as_bytes(), true),
                    uri_encode(v.as_bytes(), true),
                )
            })
            .collect();
        pairs.sort();
        let canonical_query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let mut canonical_headers = String::new();
        for name in &self.signed_headers {
            let values: Vec<String> = headers
                .get_all(name.as_str())
                .iter()
                .map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            canonical_headers.push_str(&values.join(","));
            canonical_headers.push('\n');
        }
        format!(
            "{method}\n{uri}\n{canonical_query}\n{canonical_headers}\n{}\n{}",
            self.signed_headers.join(";"),
            self.payload
        )
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SigV4's URI encoding: unreserved characters kept, every other byte `%XX` (upper-case hex);
/// `/` kept unless `slash` is set.
pub fn uri_encode(bytes: &[u8], slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && !slash)
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example "GET Object" from the Amazon S3 API reference's SigV4 header-auth page
    /// (`Authorization` header example with a Range header).
    #[test]
    fn aws_documented_example() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "examplebucket.s3.amazonaws.com".parse().unwrap());
        headers.insert("range", "bytes=0-9".parse().unwrap());
        headers.insert(
            "x-amz-content-sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .parse()
                .unwrap(),
        );
        headers.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        headers.insert("authorization", auth.parse().unwrap());
        let signed = parse(&headers, &[], false).unwrap().unwrap();
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert!(signed
            .verify("GET", "/test.txt", &[], &headers, secret)
            .is_ok());
        let wrong = signed
            .verify("GET", "/test.txt", &[], &headers, "wrong")
            .unwrap_err();
        // The documented canonical request and string to sign, which go into the
        // SignatureDoesNotMatch body; no secret in them.
        assert_eq!(
            wrong.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            wrong.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        // The path is re-canonicalised: `/test%2Etxt` decodes to `/test.txt` and matches.
        assert!(signed
            .verify("GET", "/test%2Etxt", &[], &headers, secret)
            .is_ok());
    }

    #[test]
    fn canonical_uri_encodes_sub_delims_once() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "h".parse().unwrap());
        headers.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        headers.insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
        let auth = "AWS4-HMAC-SHA256 Credential=k/20130524/auto/s3/aws4_request,SignedHeaders=host,Signature=00";
        headers.insert("authorization", auth.parse().unwrap());
        let signed = parse(&headers, &[], false).unwrap().unwrap();
        let raw = signed.canonical_request("GET", "/b/a(1)!'*+=@:.txt", &[], &headers);
        let enc =
            signed.canonical_request("GET", "/b/a%281%29%21%27%2A%2B%3D%40%3A.txt", &[], &headers);
        assert_eq!(raw, enc);
        assert!(
            raw.contains("\n/b/a%281%29%21%27%2A%2B%3D%40%3A.txt\n"),
            "{raw}"
        );
        // Not double-encoded.
        let pct = signed.canonical_request("GET", "/b/a%20b", &[], &headers);
        assert!(pct.contains("\n/b/a%20b\n"), "{pct}");
    }
}
