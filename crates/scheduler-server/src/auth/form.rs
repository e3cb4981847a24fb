//! `application/x-www-form-urlencoded` decoding for the token endpoint: the request body and
//! the client id and secret inside HTTP Basic credentials (RFC 6749 §2.3.1 encodes both).

/// Why a form could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormError {
    /// A `%` escape is broken or the result is not UTF-8.
    BadEncoding,
    /// A parameter appears more than once (RFC 6749 §3.2 forbids it).
    Duplicate,
}

/// Decodes a form body into name/value pairs, in order. Empty segments (`a=1&&b=2`) are
/// skipped; a name without `=` has an empty value; repeated names are an error.
pub(crate) fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for segment in body.split(|b| *b == b'&') {
        if segment.is_empty() {
            continue;
        }
        let (name, value) = match segment.iter().position(|b| *b == b'=') {
            Some(i) => (&segment[..i], &segment[i + 1..]),
            None => (segment, &[][..]),
        };
        let name = decode_component(name)?;
        let value = decode_component(value)?;
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(FormError::Duplicate);
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Decodes one form-urlencoded component (`+` is a space, `%XX` a byte).
pub(crate) fn decode_component(input: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = input.get(i + 1).and_then(|b| hex_value(*b));
                let lo = input.get(i + 2).and_then(|b| hex_value(*b));
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                    _ => return Err(FormError::BadEncoding),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::BadEncoding)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_plus_and_escapes() {
        let pairs = parse_form(b"grant_type=client_credentials&scope=a+b%3Ac&&flag").expect("form");
        assert_eq!(
            pairs,
            vec![
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("scope".to_owned(), "a b:c".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn rejects_duplicates_and_bad_escapes() {
        assert_eq!(parse_form(b"a=1&a=2"), Err(FormError::Duplicate));
        assert_eq!(parse_form(b"a=%4"), Err(FormError::BadEncoding));
        assert_eq!(parse_form(b"a=%zz"), Err(FormError::BadEncoding));
        assert_eq!(parse_form(b"a=%ff"), Err(FormError::BadEncoding));
    }
}
