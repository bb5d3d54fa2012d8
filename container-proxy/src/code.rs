//! Puts an action's code on disk for a launcher: a zip (base64 in `exec.code`) is unpacked into a
//! directory, a native script is written as an executable `exec`. Paths inside a zip that would
//! escape the directory are refused.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use base64::Engine;

/// Why the code could not be unpacked (a developer error at init).
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error("the action's code is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("the action's code is not a valid zip file: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("the zip file contains an unsafe path: {0}")]
    UnsafePath(String),
    #[error("cannot write the action's code: {0}")]
    Io(#[from] std::io::Error),
}

/// Decodes base64 code, tolerating whitespace and line breaks.
pub fn decode_base64(code: &str) -> Result<Vec<u8>, CodeError> {
    let clean: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(clean)?)
}

/// Unpacks a base64 zip into `dir`.
pub fn unzip_base64(code: &str, dir: &Path) -> Result<(), CodeError> {
    let bytes = decode_base64(code)?;
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let rel = entry
            .enclosed_name()
            .ok_or_else(|| CodeError::UnsafePath(entry.name().to_string()))?;
        let out = dir.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&out)?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::File::create(&out)?;
        std::io::copy(&mut entry, &mut file)?;
        #[cfg(unix)]
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(mode & 0o777))?;
        }
    }
    Ok(())
}

/// Makes `path` executable by its owner.
pub fn make_executable(path: &Path) -> Result<(), CodeError> {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = std::fs::metadata(path)?.permissions();
    perms.set_mode(perms.mode() | 0o700);
    std::fs::set_permissions(path, perms)?;
    Ok(())
}

/// Prepares a native (`blackbox`) action in `dir` and returns the path of its executable: the
/// `exec` of a zip, or the source written as `exec` (a script with a shebang).
pub fn prepare_native(code: &str, binary: bool, dir: &Path) -> Result<PathBuf, CodeError> {
    let exec = dir.join("exec");
    if binary {
        unzip_base64(code, dir)?;
        if !exec.is_file() {
            return Err(CodeError::UnsafePath(
                "the zip file has no 'exec' at its root".into(),
            ));
        }
    } else {
        let mut f = std::fs::File::create(&exec)?;
        f.write_all(code.as_bytes())?;
    }
    make_executable(&exec)?;
    Ok(exec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(files: &[(&str, &str)]) -> String {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            for (name, content) in files {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                w.write_all(content.as_bytes()).unwrap();
            }
            w.finish().unwrap();
        }
        base64::engine::general_purpose::STANDARD.encode(buf.into_inner())
    }

    #[test]
    fn unzips_into_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        unzip_base64(&zip_of(&[("a/b.txt", "hi")]), dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a/b.txt")).unwrap(),
            "hi"
        );
    }

    #[test]
    fn refuses_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        let err = unzip_base64(&zip_of(&[("../evil", "x")]), dir.path()).unwrap_err();
        assert!(matches!(err, CodeError::UnsafePath(_)));
    }

    #[test]
    fn native_needs_exec() {
        let dir = tempfile::tempdir().unwrap();
        assert!(prepare_native(&zip_of(&[("x", "y")]), true, dir.path()).is_err());
        let dir = tempfile::tempdir().unwrap();
        let exec = prepare_native("#!/bin/sh\n", false, dir.path()).unwrap();
        assert!(exec.is_file());
    }
}
