//! Helpers shared by the integration tests: RSA test keys with JWK Sets and RS256 tokens
//! (an external issuer's), and a process-wide log capture.

#![allow(dead_code, reason = "each test binary uses a part of the helpers")]
#![allow(unreachable_pub, reason = "a module of test binaries")]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{Value, json};

// ---- RSA keys and RS256 tokens ----------------------------------------------------------

/// A 2048-bit RSA key in PKCS#8 DER (base64), generated for this test only with
/// `openssl genpkey`; it protects nothing.
pub const TEST_RSA_PKCS8: &str = "\
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCzQYMPzOCyptGtOroEVg0ZQi99DqVbmA/XqeAVZQ1N\
GPILeGmkW1llFmd1xcZhLgN8FKxrgnnwmDru6hrLm6aEC1zSDaxr4DLUO/yFxibXAs7ixOcaATkQzqSI1XFzVWKPMI8J\
fDFeeoTvaqFbK8riaB8tII41Z72tcWdC+SrRuJPjn/3jU3zE32uja9x/gEfKkIf88SsExFknaQf42OV9lpaY1q228ECX\
F6/HHJdorkublO/WZNVZQ9IV6XnGX3wH5p71jHcnwMc0Zj8xgDtu0n5Q/CVJnaTQtIBYlHHhaBU7p6ISEhP9TbFqkuoU\
yYtQN34SW/N1EEbVPO7B0o1zAgMBAAECggEAPpOzq6vjkypeT0GNl57ssrEiv98BheCnQyvn8MAWrR/0u2FdS8WiBwKT\
uo8A6oL0L3hOGrfxVrbl9+qc0RB0yGrpC+E/HGenhuSsCo06mNu/mnWPkcn0gHQLB0Ov98nKft8+R9rlpyxRRP0t+BRp\
HrGnlIrlaipdknNgz4YJVy2pBC6htXDWPmWASMQobYwUMqXFtTrAwSSh5+TBtii0zVCEL1FrmjPr4S5daYNI/9DjBWk6\
yAX368v/dKMMFZSYQ6w03GLjEBdqlk2Kc7/XA3qW4VgzyUCjcaU7vwMkpnh/uKrxBoqSsG321tCLz/a/AvBdqPf5Z00v\
WGfWZkVSlQKBgQDj8Z7/QvIAfpebGG4pEMgzyR25JhLCUHUdIPi8rg8vwGB0Pcu/t9gw50AkrswjiTFDL6OvimidhIOt\
zZHoFQz2Ddn1v/zJB2SRblW/kACiLBqDd7JtqAE44Y0OmBfUgVoHhP4PG8/BTmGXSmdumenr0piYGSQHO/ggVN44sGnO\
fQKBgQDJUcMplRQvnjGskMhB6YqAGYdZFg0NhCxg5PgJ9ROyFHPpZDpm9xq5NRQn843th7rm1qd+PUM40u7jidLAmQn+\
lIym9vVkylXQL9wzjMWqJzxqUdwnRoX8AIM+nOkt8s3Z9cOWbODal2q7KwZmFeBERX7MzfJtCLLVQM5DD4berwKBgQC8\
DbcS+PQWnFoPRpR7pLDGqIGxIkwPq7kzEuSjJSa6SohI3kKeJNpjXiV5HgyktKbDuyXbyOCOM6k/Vn2tbtCGnt7W9FFk\
uIirws9Tf0ZGhQRKuhGmjhiUCOEKzUe7tgvEcF/5rwQzgqrY2jWC9dAbEl95/CPRJBSM9/dt5X0lMQKBgQDCA7j4vwI4\
LdWjf9hupRpj/7ZPpY+owgNe0es09Wooycs3Vu9twaCQctXc9ryF+LOnuaCraXD6N1YgFPf1wsc+AH1Yf1HY86Ilw6oM\
SBNKuwtfT0rC0xVW2kuhsOiL7p5x+oam1oEQSLKEdJ9zDIwYX30m9Sc36xUlrZHaUQFiYwKBgQCUJRj7b8oHQDDBNW0l\
cXeDYPQfQzZJKenbFxluU+70IiV0a8gh80+ONxE0SF05QTJUUKlD/9Ce1N+zAZN9oL+xe5xs7rvjvho0SObOuAe1iet8\
8y6rYgP2jb1THAouY2e2ZvAshLY6EiEQhKiNeTa5LXQi72tSu3HwNE+NBP//Eg==";

/// Another 2048-bit RSA test key (PKCS#8 DER, base64), also made with `openssl genpkey` for
/// these tests only; the key an issuer rotates to.
const SECOND_RSA_PKCS8: &str = "\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDk7rjT1Bv8oYVQ5htI6x0z84CCo9cUh9FznX56Ml\
T7NarYQj3iuIZiI13s7l+z3X3pbhp949TezjsMlbXe5G5/DV3XlxhDFfYNWXBLWAACvrEThkXBPAAWsSYRZWclZJZQ\
svWbBQix7AwizeugmD18467sZSd3e34RMJb5RRLgjBvZHa3UEYkOVFnHyLTj3n5jR9vM4yqkrUgpFIcMu2VL677ZT5\
k3pPrgEJ0Q/YvlU+pV3Keg37M/IXZyNcOgO9mP3MjLA+IrUDLERI55UmdrzWJYR6mAGPujnmiPLh6oxxt1vtERF1qv\
hIwZcaRvqYPDS/FSSBAiL7e3w4VM3uj1AgMBAAECggEAAumVkN5TL9LXORkAUlxpXfKUWTUf5Js4uy2PARt4UMzVPF\
SVaHe7/+4ewQekUIu6ERjtPdpC6EW74xRZgLkrvbKMFdTOgnX6UB+p6c94CpDl/E9aPlPW1XMR/qkpV4Sw09x++uak\
vmy4F85CV+Pv7lGQNWIxDxhTWYEifo/WJmSjwP8arqaLpQL2laq5nr9KePWC4w9fGii7zC7RN6bW14HVuT0k4vKKFG\
kRC5HBOSYxdnKRIF390DBHBiBAfF4mLe9bNB9ilyg6AUx+QpyWwbvkN7EnYgquccRYTYfafoU2w298rzp8rFhhxivU\
DvQEehPO8IY0wTt3AWU01lpaMQKBgQD7n+8EXRwdlBJdd11u/7w6J9L3sO/NU1KWpI7N+/un6lZVCDXgB532USZjaW\
pdkkfuvMW1ElNWWJ7VhjYezVcLwSuWdtxu3GXeHxQ8Ts2mfbPRqfIjfQQ6JEdsDSOyjKQWHUClusYebYY1Nm9TdF0Q\
70Nx9f0d3+0Q+/QGjPtq0QKBgQDo6ccOQE+teZxN8tQKkBtxrNan5/r9qdWGeuRS572rUAcabDMXznx0alTcWPSnts\
kqdMW2AxztKDC8R1ZF/Iis7XZucIdWR4aRR3ad0iKxUznljb/4BQ6ego08QiCFoizpqmW45WzSr3BLM+Jjx07F2u5R\
DEMvOfq6vA1ycxGc5QKBgAS67PNYDL9BmVbId6kuhYtSVFTzro5dkp/iWAznP8PYU+clUF31xrJqtB4KTUWVCmUih1\
TwE0D8SYAaFcpecdR2vSsG8P3khsW2L9syYAtRMaAvYa3pG7s8E1uko5cnra38vspeyHqp9GvrqgwXk+hNlyb9SNTW\
8M3w7pVw8QkBAoGBAIJll5bn9HPHuPV+9K2xPlwnCspYOxHXCn9OwBOWQH7vv/pQB07VwKGggkAW4WogEIHffG1JUu\
GHdbmDKs7l8lL2Yy6ze2GXi8Q8QTFcWyXx1WEqOgaONkASESZiUzjdsc1kI60fbQyLQhAoTR/VjsmAp5nihp6jFDeF\
XvXrbDntAoGAf+4B1TaeghdnNuk2NKckPeqpycXvF1JSa9FGeRr7r4gyBheamPFr4Q7WPKnlaqEfQtK/TmaL9j2Z2X\
dd/vN3CqMMoqi9Mr7yQ24TgsOtms1mW/gWw7wNB7cCgabz9ZhnFHeucDAYp1YjjX9AEChYGKSNd0dWMUuprkhI/1sy\
/I4=";

fn key_from(pkcs8_b64: &str) -> RsaKeyPair {
    let der = STANDARD.decode(pkcs8_b64).unwrap();
    RsaKeyPair::from_pkcs8(&der).unwrap()
}

/// The first test key.
pub fn rsa_key() -> RsaKeyPair {
    key_from(TEST_RSA_PKCS8)
}

/// The second test key.
pub fn second_rsa_key() -> RsaKeyPair {
    key_from(SECOND_RSA_PKCS8)
}

/// The public JWK of `key` under `kid`.
pub fn rsa_jwk(key: &RsaKeyPair, kid: &str) -> Value {
    let public: RsaPublicKeyComponents<Vec<u8>> = key.public().into();
    json!({"kty": "RSA", "use": "sig", "kid": kid,
           "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e),
           "x5c": ["MIIB"]})
}

/// A JWK Set document with `key` under `kid` (and an EC key that is ignored).
pub fn rsa_jwks(key: &RsaKeyPair, kid: &str) -> String {
    json!({"keys": [
        {"kty": "EC", "kid": "ignored", "crv": "P-256", "x": "AA", "y": "AA"},
        rsa_jwk(key, kid),
    ]})
    .to_string()
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// An RS256 JWT over `payload`, signed by `key`, naming `kid`.
pub fn rs256(key: &RsaKeyPair, kid: &str, payload: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let input = format!("{}.{}", b64_json(&header), b64_json(payload));
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

// ---- log capture ------------------------------------------------------------------------

/// Records every event and span field, formatted, at every level.
#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<String>>);

/// The log of this whole test process, captured at TRACE.
///
/// Installed as the global subscriber by every test before it does anything: a scoped
/// (`set_default`) subscriber would miss events whose callsites another test thread happens
/// to register at the same moment (tracing then caches "never" for them).
pub fn logs() -> &'static Capture {
    static LOGS: OnceLock<Capture> = OnceLock::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        tracing::subscriber::set_global_default(capture.clone()).unwrap();
        capture
    })
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut out = self.0.lock().unwrap();
        out.push_str("\nspan");
        span.record(&mut Fields(&mut out));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock().unwrap();
        let _ = write!(
            out,
            "\n{} {}",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut Fields(&mut out));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
