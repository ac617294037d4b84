//! Sandbox keys: where pins live (libnetwork's `SetBasePath`/`GenerateKey` model).
//!
//! A key is the absolute path of the pin file. Keys made by [`generate_key`] always sit directly
//! under [`base_path`]; ids that could escape it are rejected.

use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::validate;

/// Default root, as in libnetwork: pins live in `<root>/netns`.
pub const DEFAULT_ROOT: &str = "/var/run/docker";

static BASE: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Sets the root under which pins live: `<root>/netns`. Affects later [`generate_key`] calls.
pub fn set_base_path(root: impl AsRef<Path>) -> Result<()> {
    let root = root.as_ref();
    if !root.is_absolute() {
        return Err(Error::InvalidKey { key: root.display().to_string(), reason: "base path must be absolute" });
    }
    check_components(root)?;
    *BASE.write() = Some(root.join("netns"));
    Ok(())
}

/// The directory pins are created in.
pub fn base_path() -> PathBuf {
    BASE.read().clone().unwrap_or_else(|| Path::new(DEFAULT_ROOT).join("netns"))
}

/// The key for a container id: `<base>/<first 12 characters of id>`.
///
/// Rejects ids that are empty, contain `/`, NUL or whitespace, or are `.`/`..`.
///
/// ```
/// netsandbox::sandbox::set_base_path("/tmp/nsbx-doc").unwrap();
/// let k = netsandbox::sandbox::generate_key("0123456789abcdef").unwrap();
/// assert_eq!(k, "/tmp/nsbx-doc/netns/0123456789ab");
/// assert!(netsandbox::sandbox::generate_key("../etc").is_err());
/// ```
pub fn generate_key(id: &str) -> Result<String> {
    let short: String = id.chars().take(12).collect();
    check_id(id)?;
    check_id(&short)?;
    Ok(base_path().join(short).display().to_string())
}

/// Checks a container id or sandbox name: one plain file name (see [`validate::file_name`]).
pub fn check_id(id: &str) -> Result<()> {
    validate::file_name(id).map_err(|reason| Error::InvalidKey { key: id.to_owned(), reason })
}

fn check_components(p: &Path) -> Result<()> {
    let s = p.to_string_lossy();
    if s.contains('\0') {
        return Err(Error::InvalidKey { key: s.into_owned(), reason: "contains NUL" });
    }
    // Path::components() hides interior "." segments, so look at the raw segments.
    if s.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(Error::InvalidKey { key: s.into_owned(), reason: "contains '.' or '..' components" });
    }
    Ok(())
}

/// Checks a key given by the caller: an absolute path without `.`/`..` components, NUL, or a
/// trailing slash, naming a file (not the root).
pub fn check_key(key: &str) -> Result<PathBuf> {
    let p = Path::new(key);
    if key.is_empty() {
        return Err(Error::InvalidKey { key: key.into(), reason: "empty" });
    }
    if !p.is_absolute() {
        return Err(Error::InvalidKey { key: key.into(), reason: "must be an absolute path" });
    }
    check_components(p)?;
    if key.ends_with('/') || p.file_name().is_none() {
        return Err(Error::InvalidKey { key: key.into(), reason: "must name a file" });
    }
    Ok(p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check_key("/run/x/netns/abc").is_ok());
        for bad in ["", "rel/x", "/a/../b", "/a/./b", "/", "/a/", "/a\0b"] {
            assert!(matches!(check_key(bad), Err(Error::InvalidKey { .. })), "{bad:?}");
        }
        for bad in ["", "..", ".", "a/b", "../x", "a\0", "a b"] {
            assert!(matches!(generate_key(bad), Err(Error::InvalidKey { .. })), "{bad:?}");
        }
        assert!(set_base_path("relative").is_err());
        assert!(set_base_path("/a/../b").is_err());
        let k = generate_key("abcdefghijklmnop").unwrap();
        assert!(k.ends_with("/netns/abcdefghijkl"), "{k}");
        assert!(Path::new(&k).starts_with(base_path()));
    }
}
