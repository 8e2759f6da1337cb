//! ARCHITECTURE.md's layout table holds: every module of `src/` is in it,
//! and no module uses one of a higher layer. Read from the sources as text,
//! so that the table and the code cannot drift apart.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The table between the `layers` markers: module name → layer.
fn layers() -> BTreeMap<String, u32> {
    let text = fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).unwrap();
    let start = text.find("<!-- layers:begin -->").expect("begin marker");
    let end = text.find("<!-- layers:end -->").expect("end marker");
    text[start..end]
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let layer = cells.get(1)?.parse().ok()?;
            let module = cells.get(2)?.trim_matches('`').to_owned();
            Some((module, layer))
        })
        .collect()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// The top-level module a file of `src/` belongs to (`lib` for lib.rs).
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(Path::new(ROOT).join("src")).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_str().unwrap().trim_end_matches(".rs").to_owned()
}

/// The code of a file without comments and without its test module: what
/// the crate itself is built from.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(tests) => &text[..tests],
        None => text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `code` names through `crate::`: `crate::module::…` directly,
/// `crate::Name` through the crate root's re-exports (`reexports`).
fn uses(code: &str, reexports: &BTreeMap<String, String>) -> Vec<String> {
    let mut used = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap()]
                .split(',')
                .map(str::trim)
                .collect(),
            None => vec![rest],
        };
        for name in names {
            let ident: String = name
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if ident.is_empty() {
                continue;
            }
            if ident.starts_with(char::is_uppercase) || reexports.contains_key(&ident) {
                if let Some(module) = reexports.get(&ident) {
                    used.push(module.clone());
                }
            } else {
                used.push(ident);
            }
        }
    }
    used
}

/// The crate root's `pub use crate::module::{…}` lines: name → module.
fn reexports() -> BTreeMap<String, String> {
    let lib = fs::read_to_string(Path::new(ROOT).join("src/lib.rs")).unwrap();
    let mut map = BTreeMap::new();
    for statement in lib.split(';') {
        let Some(at) = statement.find("pub use crate::") else {
            continue;
        };
        let path = &statement[at + "pub use crate::".len()..];
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            let item = item.trim();
            if !item.is_empty() {
                map.insert(item.to_owned(), module.to_owned());
            }
        }
    }
    map
}

#[test]
fn every_module_is_in_the_table_and_no_import_runs_up() {
    let layers = layers();
    let reexports = reexports();
    assert!(layers.len() > 10, "the table was not read: {layers:?}");
    let mut modules = Vec::new();
    let mut against = Vec::new();
    for path in sources(&Path::new(ROOT).join("src")) {
        let module = module_of(&path);
        let Some(&layer) = layers.get(&module) else {
            panic!(
                "{} belongs to `{module}`, which ARCHITECTURE.md's table lacks",
                path.display()
            );
        };
        modules.push(module.clone());
        let text = fs::read_to_string(&path).unwrap();
        for used in uses(&code(&text), &reexports) {
            let used_layer = *layers
                .get(&used)
                .unwrap_or_else(|| panic!("{}: `crate::{used}` is in no layer", path.display()));
            if used != module && used_layer > layer {
                against.push(format!(
                    "{} (`{module}`, layer {layer}) uses `{used}` (layer {used_layer})",
                    path.display()
                ));
            }
        }
    }
    for module in layers.keys() {
        assert!(
            modules.contains(module),
            "ARCHITECTURE.md names `{module}`, which src/ does not have"
        );
    }
    assert!(
        against.is_empty(),
        "imports against the layers:\n{}",
        against.join("\n")
    );
}

#[test]
fn the_reader_finds_modules_and_reexports() {
    let reexports = reexports();
    assert_eq!(
        reexports.get("TokenError").map(String::as_str),
        Some("error")
    );
    let imports = "use crate::cache::TokenCache;\nuse crate::{TokenError, dpop::DpopProver};\n";
    assert_eq!(uses(imports, &reexports), ["cache", "error", "dpop"]);
    assert_eq!(code("// crate::layer\nlet x = 1;"), "let x = 1;");
}
