//! Signed entries through the command line and a third party: `keygen`,
//! signed writes with `--signing-key` and `GUILDCONF_SIGNING_KEY`, `export`,
//! `verify --trusted-key` in the database and with `--file`, the same export
//! checked by `docs/verify_signatures.py` (the `cryptography` package) and
//! by `openssl`, tampering with plain SQL through the `sqlite3` shell, and
//! crafted export files.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Map, Value};

mod common;
use common::{run_sqlite as guildconf, ALICE, BIN};

const G: &str = "111111111111111111";

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[track_caller]
fn expect(out: Output, want: i32, what: &str) -> Output {
    assert_eq!(
        code(&out),
        want,
        "{what}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Python signature checker on `file` with `keys`.
fn python(file: &Path, keys: &[&Path], require: bool) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/verify_signatures.py"
    ));
    if require {
        cmd.arg("--require-signed");
    }
    cmd.args(keys)
        .stdin(std::fs::File::open(file).expect("the export opens"))
        .output()
        .expect("the Python checker runs")
}

fn lines(text: &[u8]) -> Vec<Map<String, Value>> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an export line is an object"))
        .collect()
}

fn canonical_lines(lines: &[Map<String, Value>]) -> String {
    lines
        .iter()
        .map(|l| guildconf::json::canonical(&Value::Object(l.clone())).expect("canonical") + "\n")
        .collect()
}

#[test]
fn keygen_signed_writes_export_and_verify_through_the_shells() {
    let packages = Command::new("python3")
        .args(["-c", "import cryptography, rfc8785"])
        .status()
        .expect("python3 runs");
    assert!(
        packages.success(),
        "the cryptography and rfc8785 packages are needed (scripts/test.sh installs them)"
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("g.db");
    let key = dir.path().join("bot.key");
    let public = dir.path().join("bot.key.pub");
    let other = dir.path().join("other.key");

    // keygen: 0600 private key, FILE.pub beside it, the fingerprint printed.
    let made = expect(
        guildconf(&db, &["keygen", "--output", &key.display().to_string()]),
        0,
        "keygen",
    );
    let fingerprint = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    assert_eq!(fingerprint.len(), 64, "{fingerprint}");
    let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key is private");
    let private_pem = std::fs::read_to_string(&key).expect("key");
    assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(&public)
        .expect("pub")
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    // Never overwritten: the same path again is invalid input, the key unchanged.
    expect(
        guildconf(&db, &["keygen", "--output", &key.display().to_string()]),
        3,
        "keygen over an existing key",
    );
    assert_eq!(std::fs::read_to_string(&key).expect("key"), private_pem);
    expect(
        guildconf(&db, &["keygen", "--output", &other.display().to_string()]),
        0,
        "a second key",
    );
    // openssl reads both files and agrees on the fingerprint.
    let der = Command::new("openssl")
        .args(["pkey", "-pubin", "-in"])
        .arg(&public)
        .args(["-outform", "DER"])
        .output()
        .expect("openssl runs");
    assert!(der.status.success(), "openssl reads FILE.pub");
    let raw = &der.stdout[der.stdout.len() - 32..];
    assert_eq!(guildconf::json::sha256_hex(raw), fingerprint);
    let openssl_private = Command::new("openssl")
        .args(["pkey", "-in"])
        .arg(&key)
        .args(["-noout"])
        .status()
        .expect("openssl runs");
    assert!(openssl_private.success(), "openssl reads the private key");
    // And guildconf signs with a key openssl made.
    let openssl_key = dir.path().join("openssl.key");
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&openssl_key)
        .status()
        .expect("openssl runs");
    assert!(made.success());
    std::fs::set_permissions(&openssl_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let scratch = dir.path().join("scratch.db");
    expect(
        guildconf(
            &scratch,
            &[
                "create",
                G,
                "--actor",
                ALICE,
                "--signing-key",
                &openssl_key.display().to_string(),
            ],
        ),
        0,
        "signed with an openssl key",
    );

    // A write before signing, then signed writes (flag, then environment).
    let key_arg = key.display().to_string();
    expect(
        guildconf(&db, &["create", G, "--actor", ALICE]),
        0,
        "unsigned create",
    );
    // `set FIELD` on G by ALICE, signed with the bot's key, plus `extra`.
    let signed_set = |field: &str, extra: &[&str]| {
        let mut args = vec!["set", G, field, "--actor", ALICE, "--signing-key", &key_arg];
        args.extend(extra);
        guildconf(&db, &args)
    };
    expect(
        signed_set("features.a=true", &[]),
        6,
        "a signed write refuses an unsigned head",
    );
    expect(
        signed_set("features.a=true", &["--adopt-unsigned"]),
        0,
        "adopt the unsigned head once",
    );
    let by_env = Command::new(BIN)
        .args(["--database-url", &format!("sqlite://{}", db.display())])
        .args(["set", G, "features.b=true", "--actor", ALICE])
        .env("GUILDCONF_SIGNING_KEY", &key)
        .output()
        .expect("runs");
    expect(by_env, 0, "signed through GUILDCONF_SIGNING_KEY");

    let pub_arg = public.display().to_string();
    let other_pub = format!("{}.pub", other.display());
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--trusted-key", &pub_arg];
        args.extend(extra);
        guildconf(&db, &args)
    };
    expect(verify(&["--require-signed"]), 0, "verify --trusted-key");
    expect(
        guildconf(&db, &["verify", "--trusted-key", &other_pub]),
        6,
        "signed by a key that is not trusted",
    );
    let export = expect(guildconf(&db, &["export"]), 0, "export").stdout;
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &export).expect("written");
    let file_arg = file.display().to_string();
    expect(
        verify(&["--file", &file_arg, "--require-signed"]),
        0,
        "verify --file --trusted-key",
    );
    assert!(python(&file, &[&public], true).status.success());
    assert!(!python(&file, &[Path::new(&other_pub)], false)
        .status
        .success());

    // Crafted files: each fails both checkers, with problem `signature`.
    let good = lines(&export);
    assert_eq!(good.len(), 3);
    assert!(good[0].get("sig").is_none() && good[2].get("sig").is_some());
    let mut copied = good.clone();
    copied[2].insert("sig".into(), good[1]["sig"].clone());
    let mut stripped = good.clone();
    stripped[2].remove("sig");
    let mut flipped = good.clone();
    let mut value = good[2]["sig"]["value"].as_str().expect("value").to_owned();
    value.replace_range(0..1, if value.starts_with('A') { "B" } else { "A" });
    flipped[2].insert(
        "sig".into(),
        json!({"alg": "ed25519", "key": fingerprint, "value": value}),
    );
    for (name, crafted) in [
        ("a copied signature", copied),
        ("a stripped signature", stripped),
        ("a flipped signature", flipped),
    ] {
        let path = dir.path().join("crafted.jsonl");
        std::fs::write(&path, canonical_lines(&crafted)).expect("written");
        let ours = guildconf(
            &db,
            &[
                "--json",
                "verify",
                "--file",
                &path.display().to_string(),
                "--trusted-key",
                &pub_arg,
            ],
        );
        let ours = expect(ours, 6, name);
        let report: Value = serde_json::from_slice(&ours.stdout).expect("a JSON report");
        assert_eq!(report["problems"][0]["problem"], "signature", "{name}");
        assert_eq!(report["problems"][0]["seq"], 3, "{name}");
        let theirs = python(&path, &[&public], false);
        assert!(!theirs.status.success(), "{name}: the Python checker");
        assert!(
            String::from_utf8_lossy(&theirs.stdout).contains("seq=3 problem=signature"),
            "{name}: {theirs:?}"
        );
        // The chain itself is untouched: the hash checkers pass.
        expect(
            guildconf(&db, &["verify", "--file", &path.display().to_string()]),
            0,
            name,
        );
    }

    // The sqlite3 shell, as someone with the file: strip the head's
    // signature. The bot refuses to write on it; verify names it.
    let sql = format!(
        "DROP TRIGGER audit_entries_no_update; \
         UPDATE audit_entries SET sig_alg = NULL, sig_key = NULL, sig_value = NULL \
         WHERE guild_id = {G} AND seq = 3;"
    );
    let shell = Command::new("sqlite3")
        .arg(&db)
        .arg(&sql)
        .status()
        .expect("the sqlite3 shell runs");
    assert!(shell.success());
    expect(
        signed_set("features.c=true", &[]),
        6,
        "a signed write refuses the stripped head",
    );
    expect(verify(&[]), 6, "verify names the stripped entry");
    // A private key others can read is refused.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    expect(
        signed_set("features.c=true", &[]),
        3,
        "a readable private key",
    );
}
