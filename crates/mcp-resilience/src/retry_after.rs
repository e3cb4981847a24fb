//! `Retry-After` (RFC 9110 §10.2.3): how long the server asked the client to wait.
//!
//! The value is untrusted input. [`parse`] never panics, whatever the bytes: it returns
//! `None` for anything that is not delta-seconds or an HTTP-date, saturates huge numbers
//! instead of overflowing, and turns dates in the past into a zero wait. [`clamp`] then bounds
//! the wait by the policy's cap and the time left before the overall deadline.
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use mcp_resilience::retry_after;
//!
//! // Sun, 06 Nov 1994 08:49:37 GMT
//! let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
//! assert_eq!(retry_after::parse(b"120", now), Some(Duration::from_secs(120)));
//! assert_eq!(
//!     retry_after::parse(b"Sun, 06 Nov 1994 08:49:37 GMT", now),
//!     Some(Duration::from_secs(30))
//! );
//! assert_eq!(retry_after::parse(b"soon", now), None);
//! let wait = retry_after::clamp(Duration::from_secs(120), Duration::from_secs(10), None);
//! assert_eq!(wait, Duration::from_secs(10));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

/// Longest header value looked at; real values are under 40 bytes.
const MAX_LEN: usize = 64;

/// Parses a `Retry-After` value into the wait it asks for, measured from `now` (the wall
/// clock when the response arrived).
///
/// Accepts delta-seconds (`120`; values too large for a `u64` saturate) and the three
/// HTTP-date forms: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`, its two-digit year read as RFC 9110 §5.6.7 says: a year
/// more than 50 years ahead of `now` is the previous century's) and asctime
/// (`Sun Nov  6 08:49:37 1994`). Surrounding spaces and tabs are ignored; names are matched
/// without regard to case. A date at or before `now` is a zero wait. Anything else (empty,
/// negative, fractional, out-of-range fields, over 64 bytes, not ASCII) is `None`.
///
/// Never panics: this is the entry point for fuzzing.
pub fn parse(value: &[u8], now: SystemTime) -> Option<Duration> {
    let value = trim(value);
    if value.is_empty() || value.len() > MAX_LEN {
        return None;
    }
    if value.iter().all(u8::is_ascii_digit) {
        let secs = value.iter().fold(0u64, |acc, d| {
            acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(std::str::from_utf8(value).ok()?, now)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Bounds a server-requested wait: at most `cap` (the backoff cap), and at most `remaining`
/// (the time left before the overall deadline) when there is one.
pub fn clamp(wait: Duration, cap: Duration, remaining: Option<Duration>) -> Duration {
    let wait = wait.min(cap);
    remaining.map_or(wait, |r| wait.min(r))
}

/// [`parse`] then [`clamp`]: the wait a response's `Retry-After` value allows.
pub fn parse_clamped(
    value: &[u8],
    now: SystemTime,
    cap: Duration,
    remaining: Option<Duration>,
) -> Option<Duration> {
    parse(value, now).map(|wait| clamp(wait, cap, remaining))
}

/// The wait a response's headers ask for: Azure's `retry-after-ms` or `x-ms-retry-after-ms`
/// (milliseconds, as azure_core reads them) if present and valid, else `Retry-After`.
/// Unparseable values are ignored.
pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = headers.get(name).and_then(|v| millis(v.as_bytes())) {
            return Some(ms);
        }
    }
    parse(headers.get(http::header::RETRY_AFTER)?.as_bytes(), now)
}

fn millis(value: &[u8]) -> Option<Duration> {
    let value = trim(value);
    if value.is_empty() || value.len() > MAX_LEN || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ms = value.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some(Duration::from_millis(ms))
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One of the three HTTP-date forms, as a point in time.
fn http_date(s: &str, now: SystemTime) -> Option<SystemTime> {
    if let Some((day_name, rest)) = s.split_once(',') {
        let rest = rest.strip_prefix(' ')?;
        if one_of(day_name, &DAYS).is_some() {
            imf_fixdate(rest)
        } else if one_of(day_name, &LONG_DAYS).is_some() {
            rfc850(rest, now)
        } else {
            None
        }
    } else {
        asctime(s)
    }
}

/// `06 Nov 1994 08:49:37 GMT`
fn imf_fixdate(s: &str) -> Option<SystemTime> {
    let mut parts = s.split(' ');
    let day = digits(parts.next()?, 2)?;
    let month = month(parts.next()?)?;
    let year = digits(parts.next()?, 4)?;
    let time = time_of_day(parts.next()?)?;
    gmt(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    instant(year, month, day, time)
}

/// `06-Nov-94 08:49:37 GMT`
fn rfc850(s: &str, now: SystemTime) -> Option<SystemTime> {
    let mut parts = s.split(' ');
    let mut date = parts.next()?.split('-');
    let day = digits(date.next()?, 2)?;
    let month = month(date.next()?)?;
    let yy = digits(date.next()?, 2)?;
    if date.next().is_some() {
        return None;
    }
    let time = time_of_day(parts.next()?)?;
    gmt(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    // RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is the most recent
    // past year with those last two digits.
    let this_year = year_of(now);
    let mut year = this_year - this_year.rem_euclid(100) + i64::from(yy);
    if year > this_year + 50 {
        year -= 100;
    }
    instant(u32::try_from(year).ok()?, month, day, time)
}

/// `Nov  6 08:49:37 1994` after the day name (`Sun `); the day is two digits or a space and
/// one digit.
fn asctime(s: &str) -> Option<SystemTime> {
    let (day_name, rest) = s.split_once(' ')?;
    one_of(day_name, &DAYS)?;
    let (month_name, rest) = rest.split_once(' ')?;
    let month = month(month_name)?;
    let (day, rest) = match rest.strip_prefix(' ') {
        Some(rest) => {
            let (d, rest) = rest.split_once(' ')?;
            (digits(d, 1)?, rest)
        }
        None => {
            let (d, rest) = rest.split_once(' ')?;
            (digits(d, 2)?, rest)
        }
    };
    let (time, year) = rest.split_once(' ')?;
    instant(digits(year, 4)?, month, day, time_of_day(time)?)
}

fn one_of(s: &str, names: &[&str]) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(s))
}

fn month(s: &str) -> Option<u32> {
    one_of(s, &MONTHS).and_then(|i| u32::try_from(i + 1).ok())
}

fn gmt(s: &str) -> Option<()> {
    s.eq_ignore_ascii_case("GMT").then_some(())
}

/// Exactly `n` ASCII digits.
fn digits(s: &str, n: usize) -> Option<u32> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `08:49:37` as seconds since midnight; second 60 (a leap second) is allowed.
fn time_of_day(s: &str) -> Option<u32> {
    let mut parts = s.split(':');
    let h = digits(parts.next()?, 2)?;
    let m = digits(parts.next()?, 2)?;
    let sec = digits(parts.next()?, 2)?;
    if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Gregorian year `t` falls in (UTC).
fn year_of(t: SystemTime) -> i64 {
    // Seconds since the epoch, negative before it; far-off times are clamped (only the
    // two-digit-year pivot reads this).
    const LIMIT: i64 = 1 << 50;
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(LIMIT).min(LIMIT),
        Err(e) => -i64::try_from(e.duration().as_secs())
            .unwrap_or(LIMIT)
            .min(LIMIT),
    };
    let days = secs.div_euclid(86_400);
    // Inverse of `days_from_civil`, year only.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    // Months counted from March: 10 and 11 are January and February of the next year.
    let month_from_march = (5 * doy + 2) / 153;
    yoe + era * 400 + i64::from(month_from_march >= 10)
}

fn instant(year: u32, month: u32, day: u32, second_of_day: u32) -> Option<SystemTime> {
    let year = i64::from(year);
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + i64::from(second_of_day);
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
        // Before 1970: certainly in the past.
        Err(_) => Some(UNIX_EPOCH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for (y, m, d) in [(1994, 11, 6), (2000, 2, 29), (2026, 12, 31), (2099, 1, 1)] {
            let t = UNIX_EPOCH
                + Duration::from_secs(u64::try_from(days_from_civil(y, m, d)).unwrap() * 86_400);
            assert_eq!(year_of(t), y, "{y}-{m}-{d}");
        }
        assert_eq!(year_of(UNIX_EPOCH - Duration::from_secs(1)), 1969);
        assert_eq!(year_of(UNIX_EPOCH - Duration::from_secs(86_400)), 1969);
        assert_eq!(
            year_of(UNIX_EPOCH - Duration::from_secs(366 * 86_400)),
            1968
        );
        let _ = year_of(UNIX_EPOCH - Duration::from_secs(u64::MAX / 4));
    }
}
