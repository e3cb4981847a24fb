//! Key Vault references, the App Service syntax for "this setting's value lives in Key Vault":
//!
//! ```text
//! @Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/mysecret/)
//! @Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/mysecret/ec96f02080254f109c51a1f14cdb1931)
//! @Microsoft.KeyVault(VaultName=myvault;SecretName=mysecret)
//! @Microsoft.KeyVault(VaultName=myvault;SecretName=mysecret;SecretVersion=ec96f02080254f109c51a1f14cdb1931)
//! ```
//!
//! The parser is total over untrusted input: anything that starts with `@Microsoft.KeyVault(`
//! either parses or gives an error saying what is wrong; anything else is not a reference.
//! Attribute names are matched without regard to case (as App Service does), in any order,
//! with spaces around names and values ignored. Beyond App Service's forms, a reference may
//! leave the vault out (`@Microsoft.KeyVault(SecretName=mysecret)`): it then resolves against
//! the configured default vault (`key_vault_name`).
//!
//! Checked: the vault URL is `https` with a host and no user info, query or fragment, and its
//! path is `/secrets/<name>[/<version>][/]`; vault names are 3–24 letters, digits and
//! hyphens, starting with a letter; secret names 1–127 letters, digits and hyphens; versions
//! 1–64 letters and digits. Errors quote the reference (a reference is not a secret) up to 200
//! characters.

use std::fmt;

use crate::error::{Error, Kind};

/// The prefix every reference starts with.
pub const PREFIX: &str = "@Microsoft.KeyVault(";

/// The public cloud's vault DNS suffix. Sovereign clouds: `vault.azure.cn` (Azure China),
/// `vault.usgovcloudapi.net` (Azure US Government).
pub const PUBLIC_VAULT_SUFFIX: &str = "vault.azure.net";

/// Where a referenced secret's vault is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Vault {
    /// A vault URL, `https://<host>` (from `SecretUri`).
    Url(String),
    /// A vault name (`VaultName`), made a URL with the cloud's vault suffix.
    Name(String),
    /// No vault given: the configured default vault.
    Default,
}

/// A parsed `@Microsoft.KeyVault(...)` reference. `Display` gives it back in the
/// `VaultName`/`SecretUri` form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyVaultReference {
    /// The vault.
    pub vault: Vault,
    /// The secret's name.
    pub name: String,
    /// A version; `None` means the current one.
    pub version: Option<String>,
}

impl fmt::Display for KeyVaultReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.vault {
            Vault::Url(url) => {
                write!(f, "{PREFIX}SecretUri={url}/secrets/{}", self.name)?;
                if let Some(v) = &self.version {
                    write!(f, "/{v}")?;
                }
            }
            Vault::Name(vault) => {
                write!(f, "{PREFIX}VaultName={vault};SecretName={}", self.name)?;
                if let Some(v) = &self.version {
                    write!(f, ";SecretVersion={v}")?;
                }
            }
            Vault::Default => {
                write!(f, "{PREFIX}SecretName={}", self.name)?;
                if let Some(v) = &self.version {
                    write!(f, ";SecretVersion={v}")?;
                }
            }
        }
        f.write_str(")")
    }
}

impl KeyVaultReference {
    /// The vault URL (`https://<host>`, no trailing slash): the URL as given, or the name
    /// with `suffix` (e.g. [`PUBLIC_VAULT_SUFFIX`]), or `default_vault` (a name or a URL) when
    /// the reference names no vault.
    pub fn vault_url(&self, default_vault: Option<&str>, suffix: &str) -> Result<String, Error> {
        let suffix = suffix.trim_matches('.');
        match &self.vault {
            Vault::Url(url) => Ok(url.clone()),
            Vault::Name(name) => Ok(format!("https://{name}.{suffix}")),
            Vault::Default => match default_vault {
                None => Err(invalid(
                    &self.to_string(),
                    "it names no vault and no default vault (key_vault_name) is configured",
                )),
                Some(v) if v.starts_with("https://") => {
                    let parsed = parse_vault_url(v).map_err(|why| {
                        invalid(v, &format!("the default vault URL is not usable: {why}"))
                    })?;
                    Ok(parsed)
                }
                Some(name) => {
                    check_vault_name(name).map_err(|why| {
                        invalid(
                            name,
                            &format!("the default vault name is not usable: {why}"),
                        )
                    })?;
                    Ok(format!("https://{name}.{suffix}"))
                }
            },
        }
    }
}

/// True when `text` is meant as a reference (starts with [`PREFIX`], ignoring leading spaces
/// and the prefix's case).
pub fn is_reference(text: &str) -> bool {
    let t = text.trim_start();
    t.len() >= PREFIX.len()
        && t.is_char_boundary(PREFIX.len())
        && t[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
}

/// Parses `text`: `Ok(None)` when it is not a reference, `Ok(Some(_))` when it is a valid one,
/// an [`Error::is_invalid_reference`] error saying what is wrong otherwise.
///
/// ```
/// use azure_secrets::reference::{parse, Vault};
///
/// let r = parse("@Microsoft.KeyVault(VaultName=kv-prod;SecretName=SCHEDULER-API-KEY)")?.unwrap();
/// assert_eq!(r.vault, Vault::Name("kv-prod".into()));
/// assert_eq!(r.name, "SCHEDULER-API-KEY");
/// assert_eq!(parse("plain value")?, None);
/// assert!(parse("@Microsoft.KeyVault(SecretName=)").unwrap_err().is_invalid_reference());
/// # Ok::<(), azure_secrets::Error>(())
/// ```
pub fn parse(text: &str) -> Result<Option<KeyVaultReference>, Error> {
    if !is_reference(text) {
        return Ok(None);
    }
    let t = text.trim();
    let Some(body) = t
        .get(PREFIX.len()..)
        .and_then(|rest| rest.strip_suffix(')'))
    else {
        return Err(invalid(text, "it does not end with `)`"));
    };
    let mut secret_uri = None;
    let mut vault_name = None;
    let mut secret_name = None;
    let mut secret_version = None;
    for part in body.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err(invalid(
                text,
                &format!("`{}` is not `Name=value`", clip(part)),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        let slot = if key.eq_ignore_ascii_case("SecretUri") {
            &mut secret_uri
        } else if key.eq_ignore_ascii_case("VaultName") {
            &mut vault_name
        } else if key.eq_ignore_ascii_case("SecretName") {
            &mut secret_name
        } else if key.eq_ignore_ascii_case("SecretVersion") {
            &mut secret_version
        } else {
            return Err(invalid(
                text,
                &format!(
                    "unknown attribute `{}` (expected SecretUri, or VaultName, SecretName and \
                     SecretVersion)",
                    clip(key)
                ),
            ));
        };
        if slot.is_some() {
            return Err(invalid(text, &format!("`{}` is given twice", clip(key))));
        }
        *slot = Some(value);
    }
    let reference = match secret_uri {
        Some(uri) => {
            if vault_name.is_some() || secret_name.is_some() || secret_version.is_some() {
                return Err(invalid(
                    text,
                    "SecretUri cannot be combined with VaultName, SecretName or SecretVersion",
                ));
            }
            parse_secret_uri(uri).map_err(|why| invalid(text, &why))?
        }
        None => {
            let Some(name) = secret_name else {
                return Err(invalid(text, "it has neither SecretUri nor SecretName"));
            };
            check_secret_name(name).map_err(|why| invalid(text, &why))?;
            let vault = match vault_name {
                Some(v) => {
                    check_vault_name(v).map_err(|why| invalid(text, &why))?;
                    Vault::Name(v.to_owned())
                }
                None => Vault::Default,
            };
            let version = match secret_version {
                Some(v) => {
                    check_version(v).map_err(|why| invalid(text, &why))?;
                    Some(v.to_owned())
                }
                None => None,
            };
            KeyVaultReference {
                vault,
                name: name.to_owned(),
                version,
            }
        }
    };
    Ok(Some(reference))
}

/// `https://host[:port]/secrets/name[/version][/]`.
fn parse_secret_uri(uri: &str) -> Result<KeyVaultReference, String> {
    let Some(rest) = uri.strip_prefix("https://") else {
        return Err("SecretUri must be an https URL".to_owned());
    };
    if rest.contains(['?', '#']) {
        return Err("SecretUri must not have a query or fragment".to_owned());
    }
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    check_host(host)?;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        ["secrets", name] | ["secrets", name, ""] => {
            check_secret_name(name)?;
            Ok(KeyVaultReference {
                vault: Vault::Url(format!("https://{host}")),
                name: (*name).to_owned(),
                version: None,
            })
        }
        ["secrets", name, version] => {
            check_secret_name(name)?;
            check_version(version)?;
            Ok(KeyVaultReference {
                vault: Vault::Url(format!("https://{host}")),
                name: (*name).to_owned(),
                version: Some((*version).to_owned()),
            })
        }
        _ => Err("SecretUri's path must be /secrets/<name>[/<version>]".to_owned()),
    }
}

/// A default vault given as a URL: `https://host[/]`.
fn parse_vault_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| "not an https URL".to_owned())?;
    let host = rest.trim_end_matches('/');
    if host.contains(['/', '?', '#']) {
        return Err("a vault URL has no path, query or fragment".to_owned());
    }
    check_host(host)?;
    Ok(format!("https://{host}"))
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if host.contains('@') {
        return Err("the URL must not carry credentials".to_owned());
    }
    let ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !ok {
        return Err("the URL's host has characters a host name cannot have".to_owned());
    }
    Ok(())
}

fn check_vault_name(name: &str) -> Result<(), String> {
    let len = name.len();
    let valid = (3..=24).contains(&len)
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(format!(
            "vault name `{}` is not 3-24 letters, digits and single hyphens starting with a letter",
            clip(name)
        ))
    }
}

fn check_secret_name(name: &str) -> Result<(), String> {
    let valid = (1..=127).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "secret name `{}` is not 1-127 letters, digits and hyphens",
            clip(name)
        ))
    }
}

fn check_version(version: &str) -> Result<(), String> {
    let valid =
        (1..=64).contains(&version.len()) && version.chars().all(|c| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "secret version `{}` is not 1-64 letters and digits",
            clip(version)
        ))
    }
}

/// At most 200 characters of `text`, on a character boundary.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

fn invalid(reference: &str, why: &str) -> Error {
    Error::new(Kind::InvalidReference).with_context(format!("`{}`: {why}", clip(reference.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> KeyVaultReference {
        parse(text).unwrap().unwrap()
    }

    fn bad(text: &str) -> String {
        let e = parse(text).unwrap_err();
        assert!(e.is_invalid_reference());
        e.to_string()
    }

    #[test]
    fn both_app_service_forms() {
        let r =
            ok("@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/mysecret/)");
        assert_eq!(
            r.vault,
            Vault::Url("https://myvault.vault.azure.net".into())
        );
        assert_eq!((r.name.as_str(), r.version), ("mysecret", None));
        let r = ok(
            "@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/mysecret/ec96f02080254f109c51a1f14cdb1931)",
        );
        assert_eq!(
            r.version.as_deref(),
            Some("ec96f02080254f109c51a1f14cdb1931")
        );
        let r =
            ok("@Microsoft.KeyVault(VaultName=myvault;SecretName=mysecret;SecretVersion=abc123)");
        assert_eq!(r.vault, Vault::Name("myvault".into()));
        assert_eq!(r.version.as_deref(), Some("abc123"));
        // Case, order and spaces do not matter; a trailing `;` is fine.
        let r = ok(" @microsoft.keyvault( secretname = n ; VAULTNAME = myvault; ) ");
        assert_eq!(
            (r.vault, r.name.as_str()),
            (Vault::Name("myvault".into()), "n")
        );
    }

    #[test]
    fn a_reference_without_a_vault_uses_the_default() {
        let r = ok("@Microsoft.KeyVault(SecretName=SCHEDULER-API-KEY)");
        assert_eq!(r.vault, Vault::Default);
        assert_eq!(
            r.vault_url(Some("kv-prod"), PUBLIC_VAULT_SUFFIX).unwrap(),
            "https://kv-prod.vault.azure.net"
        );
        assert_eq!(
            r.vault_url(Some("https://kv.vault.azure.cn/"), PUBLIC_VAULT_SUFFIX)
                .unwrap(),
            "https://kv.vault.azure.cn"
        );
        assert!(
            r.vault_url(None, PUBLIC_VAULT_SUFFIX)
                .unwrap_err()
                .is_invalid_reference()
        );
        let named = ok("@Microsoft.KeyVault(VaultName=kv-gov;SecretName=x)");
        assert_eq!(
            named.vault_url(None, "vault.usgovcloudapi.net").unwrap(),
            "https://kv-gov.vault.usgovcloudapi.net"
        );
    }

    #[test]
    fn not_a_reference() {
        for text in [
            "",
            "value",
            "@Microsoft.KeyVaul",
            "Microsoft.KeyVault(SecretName=x)",
            "ü@Microsoft",
        ] {
            assert_eq!(parse(text).unwrap(), None, "{text}");
        }
    }

    #[test]
    fn malformed_references_say_what_is_wrong() {
        assert!(bad("@Microsoft.KeyVault(SecretName=x").contains("does not end with `)`"));
        assert!(bad("@Microsoft.KeyVault()").contains("neither SecretUri nor SecretName"));
        assert!(bad("@Microsoft.KeyVault(SecretName=x;Foo=1)").contains("unknown attribute `Foo`"));
        assert!(bad("@Microsoft.KeyVault(SecretName=x;SecretName=y)").contains("twice"));
        assert!(bad("@Microsoft.KeyVault(SecretName)").contains("Name=value"));
        assert!(bad("@Microsoft.KeyVault(SecretName=a b)").contains("secret name"));
        assert!(bad("@Microsoft.KeyVault(VaultName=-x-;SecretName=a)").contains("vault name"));
        assert!(
            bad("@Microsoft.KeyVault(VaultName=vault1;SecretName=a;SecretVersion=1.0)")
                .contains("version")
        );
        assert!(
            bad("@Microsoft.KeyVault(SecretUri=http://v.vault.azure.net/secrets/a)")
                .contains("https")
        );
        assert!(
            bad("@Microsoft.KeyVault(SecretUri=https://u:p@v.vault.azure.net/secrets/a)")
                .contains("credentials")
        );
        assert!(
            bad("@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/keys/a)")
                .contains("/secrets/")
        );
        assert!(
            bad("@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/a?x=1)")
                .contains("query")
        );
        assert!(
            bad("@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/a;SecretName=b)")
                .contains("cannot be combined")
        );
    }

    #[test]
    fn display_gives_a_reference_that_parses_back() {
        for text in [
            "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/a/0123abc)",
            "@Microsoft.KeyVault(VaultName=vault1;SecretName=b;SecretVersion=v2)",
            "@Microsoft.KeyVault(SecretName=c)",
        ] {
            let r = ok(text);
            assert_eq!(ok(&r.to_string()), r);
        }
    }

    #[test]
    fn long_garbage_is_clipped_in_errors() {
        let long = format!("@Microsoft.KeyVault(SecretName={})", "é".repeat(5_000));
        assert!(bad(&long).chars().count() < 600);
    }
}
