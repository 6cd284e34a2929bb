//! Data set downloads against an HTTP server this test starts on 127.0.0.1 (never the
//! internet): the right file, a wrong checksum, a truncated transfer, 404, a server that is down,
//! a file too large; then the real catalogue's MNIST digests through `mnistc data fetch` and
//! `mnistc data list`, and the automatic download of a missing data set into the cache.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mnistc::data::download::{self, FetchOptions};
use mnistc::data::sources::{self, KnownFile, Source, Variant};
use mnistc::data::{DataDir, DataDirSource, DataError, Dataset, Split};
use mnistc_suite::{data_dir, mnistc};

/// What the test server answers for a path.
#[derive(Clone)]
enum Reply {
    /// 200 with these bytes.
    Body(Vec<u8>),
    /// 200 announcing these bytes, then only the first half and a closed connection.
    Truncated(Vec<u8>),
    /// 200 announcing a gigabyte.
    Huge,
}

struct Server {
    base: String,
    hits: Arc<Mutex<Vec<String>>>,
}

/// Serves `routes` (anything else: 404) on a free port of 127.0.0.1 until the test ends.
fn serve(routes: HashMap<String, Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let routes = routes.clone();
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || answer(stream, &routes, &seen));
        }
    });
    Server { base, hits }
}

fn answer(mut stream: TcpStream, routes: &HashMap<String, Reply>, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    seen.lock().unwrap().push(path.clone());
    let head = |len: usize| format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    let _ = match routes.get(&path) {
        Some(Reply::Body(bytes)) => {
            stream.write_all(head(bytes.len()).as_bytes()).and_then(|()| stream.write_all(bytes))
        }
        Some(Reply::Truncated(bytes)) => {
            stream.write_all(head(bytes.len()).as_bytes()).and_then(|()| stream.write_all(&bytes[..bytes.len() / 2]))
        }
        Some(Reply::Huge) => stream.write_all(head(1 << 30).as_bytes()).and_then(|()| stream.write_all(&[0; 4096])),
        None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"),
    };
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// A port nothing listens on.
fn dead_base() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

const CONTENT: &[u8] = b"the content of the data set's only file, checked by its SHA-256";

/// A one-file data set `toy` whose file is verified by the SHA-256 of [`CONTENT`], fetched
/// from `mirrors` (`MIRROR/one.gz`).
fn toy(mirrors: &[String]) -> &'static Source {
    let sha: &'static str = Box::leak(mnistc::data::sha256_hex(CONTENT).into_boxed_str());
    let content: &'static [(Variant, &'static str)] = Box::leak(vec![(Variant::Official, sha)].into_boxed_slice());
    let files: &'static [KnownFile] =
        Box::leak(vec![KnownFile { name: "one", content, archive: None, max_bytes: 1 << 20 }].into_boxed_slice());
    let mirrors: Vec<&'static str> = mirrors.iter().map(|m| &*Box::leak(m.clone().into_boxed_str())).collect();
    leak(Source { name: "toy", title: "toy", files, mirrors: Box::leak(mirrors.into_boxed_slice()), archive: None })
}

fn fetch(source: &Source, root: &Path, mirrors: Option<Vec<String>>) -> (Result<download::Fetched, DataError>, String) {
    let mut log = Vec::new();
    let mut opts = FetchOptions { mirrors, force: false, progress: false, log: &mut log };
    let result = download::fetch(source, root, &mut opts);
    (result, String::from_utf8_lossy(&log).into_owned())
}

/// The names in `dir`, sorted (to see that no temporary file is left behind).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn the_right_file_is_verified_and_put_in_place_once() {
    let server = serve(HashMap::from([("/m/one.gz".to_string(), Reply::Body(gzip(CONTENT)))]));
    let source = toy(&[format!("{}/m", server.base)]);
    let root = tempfile::tempdir().unwrap();
    let (result, _) = fetch(source, root.path(), None);
    let fetched = result.unwrap();
    assert_eq!(fetched.downloaded, ["one"]);
    assert_eq!(listing(&root.path().join("toy")), ["one.gz"]);
    assert_eq!(mnistc::data::read_file(&root.path().join("toy/one.gz")).unwrap(), CONTENT);
    // Present and verified: nothing is requested again.
    let (again, _) = fetch(source, root.path(), None);
    assert_eq!(again.unwrap().kept, ["one"]);
    assert_eq!(server.hits.lock().unwrap().len(), 1);
}

#[test]
fn a_wrong_checksum_falls_through_to_the_next_mirror_and_leaves_nothing() {
    let server = serve(HashMap::from([
        ("/bad/one.gz".to_string(), Reply::Body(gzip(b"someone else's file"))),
        ("/good/one.gz".to_string(), Reply::Body(CONTENT.to_vec())),
    ]));
    let source = toy(&[format!("{}/bad", server.base), format!("{}/good", server.base)]);
    let root = tempfile::tempdir().unwrap();
    let (result, log) = fetch(source, root.path(), None);
    assert_eq!(result.unwrap().downloaded, ["one"]);
    assert!(log.contains("SHA-256 mismatch"), "{log}");
    // The good mirror served it raw: it is kept raw, under the name the loader looks for.
    assert_eq!(listing(&root.path().join("toy")), ["one"]);

    let only_bad = toy(&[format!("{}/bad", server.base)]);
    let root = tempfile::tempdir().unwrap();
    let (result, _) = fetch(only_bad, root.path(), None);
    let err = result.unwrap_err().to_string();
    assert!(err.contains("SHA-256 mismatch") && err.contains("/bad/one.gz"), "{err}");
    assert!(listing(&root.path().join("toy")).is_empty(), "{:?}", listing(&root.path().join("toy")));
}

#[test]
fn truncated_missing_oversized_and_unreachable_are_each_named() {
    let server = serve(HashMap::from([
        ("/cut/one.gz".to_string(), Reply::Truncated(gzip(CONTENT))),
        ("/huge/one.gz".to_string(), Reply::Huge),
    ]));
    let dead = dead_base();
    let mirrors = [
        format!("{}/cut", server.base),
        format!("{}/gone", server.base),
        format!("{}/huge", server.base),
        dead.clone(),
    ];
    let source = toy(&mirrors);
    let root = tempfile::tempdir().unwrap();
    let (result, log) = fetch(source, root.path(), None);
    let err = result.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Download(ref f) if f.attempts.len() == 4), "{msg}");
    for needle in [
        "/cut/one.gz: transfer broken",
        "/gone/one.gz: HTTP 404",
        "/huge/one.gz: the server announces 1073741824 bytes",
        &format!("{dead}/one.gz: no connection"),
        // Offline, the message says which files to put where.
        &format!("put the files one (raw or .gz) in {}", root.path().join("toy").display()),
        "MNISTC_MIRROR",
    ] {
        assert!(msg.contains(needle), "`{needle}` not in:\n{msg}\nlog:\n{log}");
    }
    assert!(listing(&root.path().join("toy")).is_empty(), "{:?}", listing(&root.path().join("toy")));
}

#[test]
fn an_interrupted_download_leaves_only_a_temporary_that_the_next_fetch_removes() {
    let server = serve(HashMap::from([("/m/one.gz".to_string(), Reply::Body(gzip(CONTENT)))]));
    let source = toy(&[format!("{}/m", server.base)]);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("toy");
    std::fs::create_dir_all(&dir).unwrap();
    // What a killed process leaves: a hidden partial file the loader never looks at.
    std::fs::write(dir.join(".one.download-99999"), &gzip(CONTENT)[..10]).unwrap();
    assert!(sources::find_file(&dir, "one").is_none());
    let (result, _) = fetch(source, root.path(), None);
    result.unwrap();
    assert_eq!(listing(&dir), ["one.gz"]);
}

/// The shared MNIST files served as a mirror: `BASE/mnist/FILE.gz`.
fn mnist_mirror() -> Server {
    let shared = data_dir().join("mnist");
    let mut routes = HashMap::new();
    for name in mnistc::data::STANDARD_FILES {
        let path = sources::find_file(&shared, name).expect("the MNIST files (MNISTC_DATA)");
        let bytes = std::fs::read(&path).unwrap();
        let bytes = if path.extension().is_some_and(|e| e == "gz") { bytes } else { gzip(&bytes) };
        routes.insert(format!("/mnist/{name}.gz"), Reply::Body(bytes));
    }
    serve(routes)
}

#[test]
fn data_fetch_and_list_verify_mnist_against_the_catalogue() {
    let server = mnist_mirror();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().display().to_string();
    let (code, out, err) = mnistc(&["data", "fetch", "mnist", "--data", &dir, "--mirror", &server.base, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mnist: fetched and verified") && out.contains("4 downloaded"), "{out}");
    let (code, out, err) = mnistc(&["data", "list", "--data", &dir, "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let mnist = &list["datasets"][0];
    assert_eq!(mnist["name"], "mnist");
    assert_eq!(mnist["verified"], true, "{mnist}");
    assert_eq!(mnist["files"][0]["status"], "verified (official)");
    assert_eq!(list["datasets"][1]["present"], false);
    // A damaged copy is reported, and `fetch` replaces it.
    let labels = root.path().join("mnist/t10k-labels-idx1-ubyte.gz");
    std::fs::write(&labels, gzip(b"not the labels")).unwrap();
    let (_, out, _) = mnistc(&["data", "list", "--data", &dir]);
    assert!(out.contains("NOT verified"), "{out}");
    let (code, out, err) = mnistc(&["data", "fetch", "mnist", "--data", &dir, "--mirror", &server.base, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 downloaded") && out.contains("3 already verified"), "{out}");
    // An unknown name is bad input with a suggestion.
    let (code, _, err) = mnistc(&["data", "fetch", "mnsit", "--data", &dir]);
    assert_eq!(code, 2);
    assert!(err.contains("did you mean `mnist`"), "{err}");
}

#[test]
fn a_missing_data_set_is_downloaded_into_the_cache_only_when_no_directory_was_named() {
    let server = mnist_mirror();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache/data");
    // As `DataDir::resolve` makes it with neither --data nor MNISTC_DATA.
    let dir =
        DataDir { root: work.path().join("data"), source: DataDirSource::Default, download_root: Some(cache.clone()) };
    let mut log = Vec::new();
    download::ensure_from(&dir, Dataset::Mnist, Some(vec![server.base.clone()]), false, &mut log).unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("downloading it into"), "{log}");
    let test = mnistc::data::load(&dir, Dataset::Mnist, Split::Test).unwrap();
    assert_eq!(test.n, 10_000);
    assert_eq!(listing(&cache.join("mnist")).len(), 4);

    // A named directory is never filled unasked: the error says how to fetch into it.
    let named = DataDir::new(work.path().join("elsewhere"));
    let mut log = Vec::new();
    let err = download::ensure_from(&named, Dataset::Mnist, Some(vec![server.base.clone()]), false, &mut log)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mnistc data fetch mnist --data"), "{err}");
    assert!(!work.path().join("elsewhere").exists());
    let served: Vec<String> = server.hits.lock().unwrap().clone();
    assert_eq!(served.len(), 4, "{served:?}");
}

#[test]
fn data_list_shows_the_shared_copies_verified() {
    let (code, out, err) = mnistc(&["data", "list", "--data", &data_dir().display().to_string(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let names: Vec<&str> = list["datasets"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["mnist", "fashion-mnist", "cifar-10"]);
    for set in list["datasets"].as_array().unwrap() {
        if set["present"] == true {
            assert_eq!(set["verified"], true, "{set}");
        }
    }
    assert_eq!(list["datasets"][0]["verified"], true, "the MNIST files of MNISTC_DATA: {out}");
    let _: PathBuf = PathBuf::from(list["data_dir"].as_str().unwrap());
}
