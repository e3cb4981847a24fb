//! `Retry-After` parsing: delta-seconds and the three HTTP-date forms, past dates, huge
//! values clamped, garbage ignored, and no panic on any input (a scripted sweep of random
//! and mutated values, the fuzz target's smoke test).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use mcp_resilience::retry_after::{clamp, from_headers, parse, parse_clamped};

/// 2026-11-25T12:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_608_000)
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn delta_seconds() {
    assert_eq!(parse(b"0", now()), Some(S(0)));
    assert_eq!(parse(b"120", now()), Some(S(120)));
    assert_eq!(parse(b"007", now()), Some(S(7)));
    assert_eq!(parse(b"  30\t", now()), Some(S(30)), "optional white space");
}

#[test]
fn huge_delta_seconds_saturate_and_clamp_to_the_cap() {
    assert_eq!(
        parse(b"99999999999999999999999999", now()),
        Some(S(u64::MAX))
    );
    assert_eq!(
        parse_clamped(b"99999999999999999999999999", now(), S(10), None),
        Some(S(10))
    );
    assert_eq!(
        parse_clamped(b"86400", now(), S(10), Some(S(3))),
        Some(S(3)),
        "the remaining deadline bounds it too"
    );
    assert_eq!(clamp(S(2), S(10), Some(S(3))), S(2));
    assert_eq!(clamp(S(20), S(10), None), S(10));
}

#[test]
fn imf_fixdate() {
    assert_eq!(parse(b"Wed, 25 Nov 2026 12:00:30 GMT", now()), Some(S(30)));
    assert_eq!(
        parse(b"Thu, 26 Nov 2026 12:00:00 GMT", now()),
        Some(S(86_400))
    );
    // The day name is not checked against the date.
    assert_eq!(parse(b"Mon, 25 Nov 2026 12:01:00 GMT", now()), Some(S(60)));
    // Case-insensitive names.
    assert_eq!(parse(b"wed, 25 NOV 2026 12:00:01 gmt", now()), Some(S(1)));
    // A leap second is a valid time of day.
    assert_eq!(parse(b"Wed, 25 Nov 2026 12:00:60 GMT", now()), Some(S(60)));
}

#[test]
fn obsolete_rfc850_and_asctime_dates() {
    assert_eq!(
        parse(b"Wednesday, 25-Nov-26 12:00:10 GMT", now()),
        Some(S(10))
    );
    assert_eq!(parse(b"Wed Nov 25 12:00:20 2026", now()), Some(S(20)));
    // asctime pads a one-digit day with a space.
    let first = UNIX_EPOCH + Duration::from_secs(1_796_083_200); // 2026-12-01T00:00:00Z
    assert_eq!(
        parse(b"Tue Dec  1 00:00:05 2026", first - S(5)),
        Some(S(10))
    );
}

#[test]
fn rfc850_two_digit_years_more_than_50_years_ahead_are_last_century() {
    // '94 from 2026 would be 2094 (68 years ahead): it is 1994, in the past.
    assert_eq!(
        parse(b"Sunday, 06-Nov-94 08:49:37 GMT", now()),
        Some(Duration::ZERO)
    );
    // '30 is 2030 (4 years ahead).
    let wait = parse(b"Tuesday, 01-Jan-30 00:00:00 GMT", now()).unwrap();
    assert!(
        wait > S(3 * 365 * 86_400) && wait < S(5 * 365 * 86_400),
        "{wait:?}"
    );
}

#[test]
fn past_dates_mean_no_wait() {
    for past in [
        &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
        b"Wed, 25 Nov 2026 11:59:59 GMT",
        b"Wed, 25 Nov 2026 12:00:00 GMT",
        b"Thu, 01 Jan 1970 00:00:00 GMT",
        b"Mon, 01 Jan 0001 00:00:00 GMT",
        b"Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(
            parse(past, now()),
            Some(Duration::ZERO),
            "{}",
            String::from_utf8_lossy(past)
        );
    }
}

#[test]
fn garbage_is_ignored() {
    for bad in [
        &b""[..],
        b"   ",
        b"-1",
        b"+5",
        b"1.5",
        b"12abc",
        b"0x10",
        b"soon",
        b"Wed, 25 Nov 2026 12:00:30 UTC",
        b"Wed, 25 Nov 2026 12:00:30",
        b"Wed, 25 Nov 2026 12:00:30 GMT extra",
        b"Wed,  25 Nov 2026 12:00:30 GMT",
        b"Wed,25 Nov 2026 12:00:30 GMT",
        b"Wed, 5 Nov 2026 12:00:30 GMT",
        b"Wed, 25 Nov 26 12:00:30 GMT",
        b"Wed, 25 Nvm 2026 12:00:30 GMT",
        b"Wed, 31 Nov 2026 12:00:30 GMT",
        b"Sun, 29 Feb 2027 12:00:30 GMT",
        b"Wed, 25 Nov 2026 24:00:00 GMT",
        b"Wed, 25 Nov 2026 12:60:00 GMT",
        b"Wed, 25 Nov 2026 12:00:61 GMT",
        b"Wed, 25 Nov 2026 12:00 GMT",
        b"Wed, 00 Nov 2026 12:00:30 GMT",
        b"Xyz, 25 Nov 2026 12:00:30 GMT",
        b"Wednesday, 25-Nov-2026 12:00:10 GMT",
        b"Wednesday, 25 Nov 26 12:00:10 GMT",
        b"Wed Nov 25 12:00:20",
        b"Wed Nov 25 12:00:20 26",
        b"Wed Nov 5 12:00:20 2026",
        b"\xff\xfe120",
        b"1\x002",
        b"Wed, 25 Nov 2026 12:00:30 GMT\xc3\xa9",
        b"\xd9\xa1\xd9\xa2", // Arabic-Indic digits
    ] {
        assert_eq!(
            parse(bad, now()),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // Over 64 bytes, even if digits.
    assert_eq!(parse("9".repeat(65).as_bytes(), now()), None);
}

#[test]
fn leap_days() {
    let feb28 = UNIX_EPOCH + Duration::from_secs(1_835_308_800); // 2028-02-28T00:00:00Z
    assert_eq!(
        parse(b"Tue, 29 Feb 2028 00:00:00 GMT", feb28),
        Some(S(86_400))
    );
    assert_eq!(parse(b"Thu, 29 Feb 2100 00:00:00 GMT", feb28), None);
    assert!(parse(b"Tue, 29 Feb 2000 00:00:00 GMT", feb28).is_some());
}

#[test]
fn headers_prefer_azure_milliseconds_then_retry_after() {
    let mut h = HeaderMap::new();
    assert_eq!(from_headers(&h, now()), None);
    h.insert("retry-after", "7".parse().unwrap());
    assert_eq!(from_headers(&h, now()), Some(S(7)));
    h.insert("x-ms-retry-after-ms", "1500".parse().unwrap());
    assert_eq!(from_headers(&h, now()), Some(Duration::from_millis(1500)));
    h.insert("retry-after-ms", "250".parse().unwrap());
    assert_eq!(from_headers(&h, now()), Some(Duration::from_millis(250)));
    // Invalid millisecond values are skipped, not fatal.
    h.insert("retry-after-ms", "soon".parse().unwrap());
    h.insert("x-ms-retry-after-ms", "-1".parse().unwrap());
    assert_eq!(from_headers(&h, now()), Some(S(7)));
    h.insert("retry-after", "later".parse().unwrap());
    assert_eq!(from_headers(&h, now()), None);
}

#[test]
fn scripted_sweep_of_random_and_mutated_values_never_panics() {
    let seeds: [&[u8]; 4] = [
        b"Wed, 25 Nov 2026 12:00:30 GMT",
        b"Wednesday, 25-Nov-26 12:00:10 GMT",
        b"Wed Nov  5 12:00:20 2026",
        b"18446744073709551616",
    ];
    let mut rng = fastrand::Rng::with_seed(2026);
    let times = [
        UNIX_EPOCH,
        now(),
        UNIX_EPOCH - S(86_400 * 365 * 3000),
        UNIX_EPOCH + S(86_400 * 365 * 5000),
    ];
    for i in 0..50_000 {
        let mut value: Vec<u8> = if i % 2 == 0 {
            seeds[rng.usize(..seeds.len())].to_vec()
        } else {
            (0..rng.usize(0..40)).map(|_| rng.u8(..)).collect()
        };
        for _ in 0..rng.usize(0..4) {
            if value.is_empty() {
                break;
            }
            let at = rng.usize(..value.len());
            match rng.u8(0..3) {
                0 => value[at] = rng.u8(..),
                1 => {
                    value.remove(at);
                }
                _ => value.insert(at, rng.u8(..)),
            }
        }
        let now = times[rng.usize(..times.len())];
        if let Some(wait) = parse(&value, now) {
            assert!(parse_clamped(&value, now, S(10), Some(S(1))).unwrap() <= S(1));
            let _ = wait;
        }
    }
}
