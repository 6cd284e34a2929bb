//! Downloading a data set: from the mirrors of [`super::sources`] (or `MNISTC_MIRROR`), over
//! HTTPS with `ureq` + rustls, verified by SHA-256, written atomically.
//!
//! Every file goes to a hidden temporary name in the data set's folder (`.FILE.download-PID`)
//! and is renamed into place only once its digest matches, so an interrupted or corrupt transfer
//! never leaves a file that a later run would read. A mirror that fails (no connection, HTTP
//! error, broken transfer, wrong digest, too large) is reported and the next one is tried.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::sources::{self, KnownFile, RECORDED_DIGESTS, Source};
use super::{DataDir, DataError, Dataset, DownloadFailure};

/// The environment variable naming mirrors that replace the standard ones: one base URL (or
/// several, comma-separated) serving the layout of a data directory, `URL/mnist/FILE.gz`.
pub const MIRROR_ENV: &str = "MNISTC_MIRROR";

/// How to download.
pub struct FetchOptions<'a> {
    /// Base URLs replacing the standard mirrors (`URL/SET/FILE.gz`, or `URL/ARCHIVE` for a
    /// data set that comes as a tarball); `None`: the standard mirrors.
    pub mirrors: Option<Vec<String>>,
    /// Fetch again even files that are present and verified.
    pub force: bool,
    /// A progress bar on stderr (when it is a terminal).
    pub progress: bool,
    /// One line per file fetched and per failed attempt.
    pub log: &'a mut dyn Write,
}

/// The mirrors of `MNISTC_MIRROR`, if set: comma-separated base URLs.
pub fn mirrors_from_env() -> Option<Vec<String>> {
    let v = std::env::var(MIRROR_ENV).ok()?;
    let list: Vec<String> =
        v.split(',').map(|s| s.trim().trim_end_matches('/').to_string()).filter(|s| !s.is_empty()).collect();
    (!list.is_empty()).then_some(list)
}

/// What a fetch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Files downloaded (or extracted) and verified.
    pub downloaded: Vec<String>,
    /// Files that were present and verified already.
    pub kept: Vec<String>,
    /// Bytes received.
    pub bytes: u64,
}

/// Makes `dataset` loadable through `dir`: nothing when its files are there; when they are not
/// and no data directory was named, downloads them into the cache's data folder (from
/// `MNISTC_MIRROR` if set, else the standard mirrors). When a directory was named, reports the
/// missing files (as loading would) instead of downloading into it unasked.
///
/// # Errors
/// [`DataError::Missing`] or [`DataError::Download`].
pub fn ensure(dir: &DataDir, dataset: Dataset, progress: bool, log: &mut dyn Write) -> Result<(), DataError> {
    ensure_from(dir, dataset, mirrors_from_env(), progress, log)
}

/// [`ensure`] with the mirrors given (`None`: the standard ones) instead of `MNISTC_MIRROR`.
///
/// # Errors
/// As [`ensure`].
pub fn ensure_from(
    dir: &DataDir,
    dataset: Dataset,
    mirrors: Option<Vec<String>>,
    progress: bool,
    log: &mut dyn Write,
) -> Result<(), DataError> {
    let names = dataset.files();
    if dir.find_all(dataset, names).is_ok() {
        return Ok(());
    }
    let Some(root) = dir.download_root.as_deref() else {
        // A directory was named: report the missing files there, with the full explanation.
        return dir.locate(dataset, &[super::Split::Train, super::Split::Test]).map(|_| ());
    };
    let target = root.join(dataset.dir_name());
    let source = sources::source(dataset.name()).ok_or_else(|| {
        DataError::Download(Box::new(DownloadFailure {
            dataset: dataset.name().into(),
            dir: target.clone(),
            files: names.iter().map(|n| n.to_string()).collect(),
            problem: "no mirror is known for it".into(),
            attempts: Vec::new(),
        }))
    })?;
    let _ = writeln!(
        log,
        "{dataset} is neither in {} nor in {}: downloading it into the latter",
        dir.dataset_dir(dataset).display(),
        target.display()
    );
    let mut opts = FetchOptions { mirrors, force: false, progress, log };
    fetch(source, root, &mut opts).map(|_| ())
}

/// Downloads the files of `source` that are missing or unverified in `root/NAME/` (all of them
/// with `force`), verifying each.
///
/// # Errors
/// [`DataError::Download`] naming every URL tried and what went wrong with it, or
/// [`DataError::Io`] when the folder cannot be written.
pub fn fetch(source: &Source, root: &Path, opts: &mut FetchOptions<'_>) -> Result<Fetched, DataError> {
    let dir = root.join(source.name);
    std::fs::create_dir_all(&dir).map_err(|e| DataError::Io { path: dir.clone(), source: e })?;
    remove_stale_temporaries(&dir, source);
    let checks = sources::check_folder(source, &dir);
    let mut fetched = Fetched::default();
    let wanted: Vec<&'static KnownFile> = source
        .files
        .iter()
        .zip(&checks)
        .filter_map(|(file, check)| {
            if !opts.force && check.status.is_verified() {
                fetched.kept.push(file.name.to_string());
                None
            } else {
                Some(file)
            }
        })
        .collect();
    if wanted.is_empty() {
        return Ok(fetched);
    }
    let mut session = Session { agent: agent(), dir: &dir, opts, attempts: Vec::new(), fetched };
    let failure = |problem: String, attempts: Vec<String>| {
        DataError::Download(Box::new(DownloadFailure {
            dataset: source.name.into(),
            dir: dir.clone(),
            files: source.files.iter().map(|f| f.name.to_string()).collect(),
            problem,
            attempts,
        }))
    };
    let user_mirrors = session.opts.mirrors.clone();
    match (&source.archive, &user_mirrors) {
        // The standard mirrors of CIFAR-10 serve one tarball.
        (Some(archive), None) => {
            let urls: Vec<String> = source.mirrors.iter().map(|m| format!("{m}/{}", archive.name)).collect();
            if !session.archive(source, &urls)? {
                return Err(failure(format!("no mirror served a verified copy of {}", archive.name), session.attempts));
            }
        }
        (archive, mirrors) => {
            let mut missing = Vec::new();
            for file in &wanted {
                // The standard mirrors serve `FILE.gz`; a data directory served as a mirror may
                // hold a file raw as well.
                let urls: Vec<String> = match mirrors {
                    Some(list) => list
                        .iter()
                        .flat_map(|m| {
                            [
                                format!("{m}/{}/{}.gz", source.name, file.name),
                                format!("{m}/{}/{}", source.name, file.name),
                            ]
                        })
                        .collect(),
                    None => source.mirrors.iter().map(|m| format!("{m}/{}.gz", file.name)).collect(),
                };
                if !session.file(file, &urls)? {
                    missing.push(file.name);
                }
            }
            if !missing.is_empty() {
                // A mirror given by the user may hold the data set's tarball instead.
                let tarball = archive.as_ref().zip(mirrors.as_ref());
                let got_it = match tarball {
                    Some((archive, list)) => {
                        let urls: Vec<String> = list.iter().map(|m| format!("{m}/{}", archive.name)).collect();
                        session.archive(source, &urls)?
                    }
                    None => false,
                };
                if !got_it {
                    return Err(failure(
                        format!("no mirror served a verified copy of {}", missing.join(", ")),
                        session.attempts,
                    ));
                }
            }
        }
    }
    Ok(session.fetched)
}

/// One fetch of one data set: the HTTP agent, the target folder, and what happened so far.
struct Session<'a, 'o, 'l> {
    agent: ureq::Agent,
    dir: &'a Path,
    opts: &'o mut FetchOptions<'l>,
    /// Each URL tried in vain, with why.
    attempts: Vec<String>,
    fetched: Fetched,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("mnistc/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// Removes what an interrupted download of this data set left behind.
fn remove_stale_temporaries(dir: &Path, source: &Source) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = source.files.iter().map(|f| f.name).chain(source.archive.as_ref().map(|a| a.name)).any(|f| {
            name.strip_prefix('.').and_then(|n| n.strip_prefix(f)).is_some_and(|rest| {
                rest.starts_with(".download-") || rest.starts_with(".extract-") || rest.starts_with(".gz.download-")
            })
        });
        if ours {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Records a failed attempt: in the log now, in the error if every mirror fails.
fn failed(url: &str, reason: &str, log: &mut dyn Write, attempts: &mut Vec<String>) {
    let _ = writeln!(log, "  failed: {reason}");
    attempts.push(format!("{url}: {reason}"));
}

fn temp_path(dir: &Path, name: &str, what: &str) -> PathBuf {
    dir.join(format!(".{name}.{what}-{}", std::process::id()))
}

impl Session<'_, '_, '_> {
    /// Tries `urls` in order for one file; `Ok(true)` once one verifies and is in place.
    fn file(&mut self, file: &KnownFile, urls: &[String]) -> Result<bool, DataError> {
        let (agent, dir, opts, attempts, fetched) =
            (&self.agent, self.dir, &mut *self.opts, &mut self.attempts, &mut self.fetched);
        let tmp = temp_path(dir, file.name, "download");
        for url in urls {
            let _ = writeln!(opts.log, "downloading {url}");
            let result = download(agent, url, &tmp, file.max_bytes, opts.progress)
                .and_then(|(bytes, sha)| verify_file(file, &tmp, &sha).map(|gz| (bytes, gz)));
            match result {
                Ok((bytes, gz)) => {
                    let dest = dir.join(if gz { format!("{}.gz", file.name) } else { file.name.to_string() });
                    let other = dir.join(if gz { file.name.to_string() } else { format!("{}.gz", file.name) });
                    std::fs::rename(&tmp, &dest).map_err(|e| {
                        let _ = std::fs::remove_file(&tmp);
                        DataError::Io { path: dest.clone(), source: e }
                    })?;
                    // A raw file would be found before the verified `.gz` (and vice versa).
                    let _ = std::fs::remove_file(&other);
                    fetched.downloaded.push(file.name.to_string());
                    fetched.bytes += bytes;
                    return Ok(true);
                }
                Err(reason) => {
                    let _ = std::fs::remove_file(&tmp);
                    failed(url, &reason, opts.log, attempts);
                }
            }
        }
        Ok(false)
    }
}

/// Checks a downloaded file: the digest of the bytes as served against the published archive
/// digest, else the digest of its content against the known copies. `Ok(is_gzip)`.
fn verify_file(file: &KnownFile, tmp: &Path, served_sha: &str) -> Result<bool, String> {
    let gz = is_gzip(tmp);
    if file.archive == Some(served_sha) {
        return Ok(gz);
    }
    let content = sources::content_sha256(tmp).map_err(|e| format!("unreadable download: {e}"))?;
    if file.variant_of(&content).is_some() {
        return Ok(gz);
    }
    let expected: Vec<String> = file.content.iter().map(|(v, d)| format!("{d} ({})", v.describe())).collect();
    Err(format!(
        "SHA-256 mismatch: the content's SHA-256 is {content}, expected {}",
        if expected.is_empty() {
            "a published digest (none is known for this file)".into()
        } else {
            expected.join(" or ")
        }
    ))
}

fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == [0x1f, 0x8b]
}

impl Session<'_, '_, '_> {
    /// Tries `urls` for the data set's tarball; `Ok(true)` once one verifies and its files are
    /// extracted into the folder.
    fn archive(&mut self, source: &Source, urls: &[String]) -> Result<bool, DataError> {
        let (agent, dir, opts, attempts, fetched) =
            (&self.agent, self.dir, &mut *self.opts, &mut self.attempts, &mut self.fetched);
        let Some(archive) = &source.archive else { return Ok(false) };
        let tmp = temp_path(dir, archive.name, "download");
        for url in urls {
            let _ = writeln!(opts.log, "downloading {url} ({} MB)", archive.bytes / 1_000_000);
            let result = download(agent, url, &tmp, archive.bytes + 1, opts.progress).and_then(|(bytes, sha)| {
                if sha == archive.sha256 {
                    Ok(bytes)
                } else {
                    Err(format!("SHA-256 mismatch: {sha}, expected {}", archive.sha256))
                }
            });
            match result {
                Ok(bytes) => {
                    let extracted = extract(source, &tmp, dir);
                    let _ = std::fs::remove_file(&tmp);
                    match extracted {
                        Ok(names) => {
                            fetched.downloaded.extend(names);
                            fetched.bytes += bytes;
                            return Ok(true);
                        }
                        Err(reason) => failed(url, &reason, opts.log, attempts),
                    }
                }
                Err(reason) => {
                    let _ = std::fs::remove_file(&tmp);
                    failed(url, &reason, opts.log, attempts);
                }
            }
        }
        Ok(false)
    }
}

/// Extracts the data set's files from a verified tarball into `dir` (raw, each atomically) and
/// records their content digests in `dir/SHA256SUMS`. Only the expected members are read; any
/// other path in the tarball is ignored.
fn extract(source: &Source, tarball: &Path, dir: &Path) -> Result<Vec<String>, String> {
    let Some(archive) = &source.archive else { return Err("no archive".into()) };
    let file = std::fs::File::open(tarball).map_err(|e| e.to_string())?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let mut done: Vec<(String, String)> = Vec::new();
    for entry in tar.entries().map_err(|e| format!("not a tar.gz: {e}"))? {
        let mut entry = entry.map_err(|e| format!("broken tarball: {e}"))?;
        let path = entry.path().map_err(|e| format!("broken tarball: {e}"))?.into_owned();
        let Some(known) = source.files.iter().find(|f| path == Path::new(archive.folder).join(f.name)) else {
            continue;
        };
        let tmp = temp_path(dir, known.name, "extract");
        let copy = (|| -> std::io::Result<String> {
            let mut out = std::fs::File::create(&tmp)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = entry.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n])?;
            }
            out.sync_all()?;
            Ok(super::hex(&hasher.finalize()))
        })();
        let sha = match copy {
            Ok(sha) => sha,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!("extracting {}: {e}", known.name));
            }
        };
        let dest = dir.join(known.name);
        std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        let _ = std::fs::remove_file(dir.join(format!("{}.gz", known.name)));
        done.push((known.name.to_string(), sha));
    }
    let missing: Vec<&str> =
        source.files.iter().map(|f| f.name).filter(|n| !done.iter().any(|(d, _)| d == n)).collect();
    if !missing.is_empty() {
        return Err(format!("the tarball lacks {}", missing.join(", ")));
    }
    let sums: String = done.iter().map(|(name, sha)| format!("{sha}  {name}\n")).collect();
    crate::atomic::write(&dir.join(RECORDED_DIGESTS), sums.as_bytes())
        .map_err(|e| format!("{}: {e}", dir.join(RECORDED_DIGESTS).display()))?;
    Ok(done.into_iter().map(|(n, _)| n).collect())
}

/// GETs `url` into `dest` (created or truncated): `(bytes, SHA-256 of the bytes)`, or why not.
fn download(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    max_bytes: u64,
    progress: bool,
) -> Result<(u64, String), String> {
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Io(io) => format!("no connection: {io}"),
        other => other.to_string(),
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let body = response.into_body();
    let length = body.content_length();
    if length.is_some_and(|n| n > max_bytes) {
        return Err(format!("the server announces {} bytes, more than any copy of the file", length.unwrap_or(0)));
    }
    let bar = progress_bar(url, length, progress);
    let mut reader = body.into_reader();
    let mut out = std::fs::File::create(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(format!("transfer broken after {total} bytes: {e}")),
        };
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max_bytes {
            return Err(format!("more than {max_bytes} bytes, more than any copy of the file"));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| format!("{}: {e}", dest.display()))?;
        bar.set_position(total);
    }
    bar.finish_and_clear();
    if let Some(expected) = length
        && total != expected
    {
        return Err(format!("transfer broken: {total} of {expected} bytes"));
    }
    out.sync_all().map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok((total, super::hex(&hasher.finalize())))
}

fn progress_bar(url: &str, length: Option<u64>, visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match length {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let style =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .map(|s| s.progress_chars("=> "));
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sources::{Archive, FileStatus, Variant};

    fn tarball(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (path, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *bytes).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn source() -> Source {
        static FILES: [KnownFile; 2] = [
            KnownFile { name: "a.bin", content: &[], archive: None, max_bytes: 1 << 20 },
            KnownFile { name: "meta.txt", content: &[(Variant::Official, "00")], archive: None, max_bytes: 1 << 20 },
        ];
        Source {
            name: "set",
            title: "test",
            files: &FILES,
            mirrors: &[],
            archive: Some(Archive { name: "set.tar.gz", sha256: "", bytes: 0, folder: "set-bin" }),
        }
    }

    #[test]
    fn extracts_only_the_known_members_and_records_their_digests() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("set.tar.gz");
        std::fs::write(
            &tgz,
            tarball(&[("set-bin/a.bin", b"AAAA"), ("set-bin/readme.html", b"x"), ("set-bin/meta.txt", b"m\n")]),
        )
        .unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let names = extract(&source(), &tgz, &out).unwrap();
        assert_eq!(names, ["a.bin", "meta.txt"]);
        assert_eq!(std::fs::read(out.join("a.bin")).unwrap(), b"AAAA");
        assert!(!out.join("readme.html").exists());
        let recorded = sources::recorded_digests(&out);
        assert_eq!(recorded[0], ("a.bin".to_string(), super::super::sha256_hex(b"AAAA")));
        let checks = sources::check_folder(&source(), &out);
        assert_eq!(checks[0].status, FileStatus::VerifiedAtDownload);
        // A member changed after the download no longer verifies.
        std::fs::write(out.join("a.bin"), b"AAAB").unwrap();
        assert_eq!(sources::check_folder(&source(), &out)[0].status, FileStatus::Unknown);
        let mut entries: Vec<String> =
            std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        entries.sort();
        assert_eq!(entries, ["SHA256SUMS", "a.bin", "meta.txt"], "no temporary file is left");
    }

    #[test]
    fn a_tarball_without_every_member_is_refused_and_paths_outside_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("set.tar.gz");
        std::fs::write(&tgz, tarball(&[("set-bin/a.bin", b"AAAA"), ("a.bin", b"evil"), ("other/meta.txt", b"x")]))
            .unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let err = extract(&source(), &tgz, &out).unwrap_err();
        assert!(err.contains("lacks meta.txt"), "{err}");
        assert!(!out.join(RECORDED_DIGESTS).exists());
        std::fs::write(&tgz, b"not a tarball").unwrap();
        assert!(extract(&source(), &tgz, &out).is_err());
    }
}
