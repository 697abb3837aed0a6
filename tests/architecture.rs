//! The one-way rules of the code, checked over its source: no import circle between
//! the modules (files) of any crate, and no use of the sandbox or store crates from the
//! HTTP surface. Read from the `use` lines and the `crate::`/`super::` paths of every
//! file; a path to a module's item counts as an edge to the file that defines it.
//!
//! This is a test of our own rather than `cargo modules dependencies --acyclic`: it needs
//! no tool installed, runs in well under a second, and states the rule next to the
//! circles that are still to be broken.
//!
//! About 570 lines, half of them the checker's own tests (a circle it must find, paths
//! it must not mistake for imports); the checker and its tests read best together.
//!
//! What still breaks the rules would be listed below; the lists are empty, and may only
//! stay so or shrink: a listed circle or use that is gone fails the test too, so that a
//! list stays the truth.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Circles still to be broken; each entry the sorted files of one circle. None is left:
/// a new one fails the test.
const KNOWN_CIRCLES: &[&[&str]] = &[];

/// Files of `crates/dispatch` that still reach the sandbox or store crates themselves.
const KNOWN_LOWER_USES: &[&str] = &[];

/// The crates whose modules are checked, and the crate directory of each.
const CRATES: &[(&str, &str)] = &[
    ("runbox", "src"),
    ("runbox_core", "crates/core/src"),
    ("runbox_sandbox", "crates/sandbox/src"),
    ("runbox_store", "crates/store/src"),
    ("runbox_runtime", "crates/runtime/src"),
    ("runbox_dispatch", "crates/dispatch/src"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A module of a crate: its path (`["functions", "call"]`) and its file.
#[derive(Debug)]
struct Module {
    path: Vec<String>,
    file: PathBuf,
    /// The source without comments and string literals.
    code: String,
}

fn relative(file: &Path) -> String {
    file.strip_prefix(root())
        .unwrap_or(file)
        .display()
        .to_string()
}

/// Blanks out comments and the contents of string and char literals, so that a path
/// in a doc comment or a message is not an import.
fn strip_comments_and_strings(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &source[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(source.len(), |n| i + n);
            i = end;
            continue;
        }
        if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(source.len(), |n| i + n + 2);
            i = end;
            continue;
        }
        if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .find(&close)
                .map_or(source.len(), |n| i + body + n + close.len());
            out.push_str("\"\"");
            i = end;
            continue;
        }
        let c = bytes[i] as char;
        if c == '"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                if bytes[j] == b'\\' {
                    j += 1;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j + 1;
            continue;
        }
        if c == '\'' {
            // A char literal ('x', '\n'), not a lifetime ('a).
            let literal = rest
                .char_indices()
                .skip(1)
                .take(4)
                .find(|(_, ch)| *ch == '\'')
                .map(|(n, _)| n);
            if let Some(n) = literal.filter(|n| *n <= 3 || rest.as_bytes()[1] == b'\\') {
                out.push_str("' '");
                i += n + 1;
                continue;
            }
        }
        out.push(c);
        i += c.len_utf8().max(1);
        while !source.is_char_boundary(i) {
            i += 1;
        }
    }
    out
}

/// The code without the bodies of inline modules (`mod tests { … }`): their `super::`
/// means the file itself, and what they use is the file's own business.
fn without_inline_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = find_inline_module(rest) {
        out.push_str(&rest[..at]);
        let body = &rest[at..];
        let mut depth = 0usize;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

/// Where the next `mod name {` starts.
fn find_inline_module(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = code[from..].find("mod ") {
        let at = from + found;
        let before = code[..at].chars().last();
        let after = &code[at + 4..];
        let name_len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let starts_word = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if starts_word && name_len > 0 && after[name_len..].trim_start().starts_with('{') {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// The modules a file declares with `mod name;` (not inline `mod name { … }`).
fn declared_children(code: &str) -> Vec<String> {
    let mut children = Vec::new();
    for line in code.lines() {
        let line = line.trim();
        let line = line
            .strip_prefix("pub(crate) ")
            .or_else(|| line.strip_prefix("pub "))
            .unwrap_or(line);
        if let Some(rest) = line.strip_prefix("mod ") {
            if let Some(name) = rest.strip_suffix(';') {
                children.push(name.trim().to_string());
            }
        }
    }
    children
}

/// Walks a crate from its root file, following `mod` declarations.
fn crate_modules(dir: &Path) -> Vec<Module> {
    let root_file = ["lib.rs", "main.rs"]
        .iter()
        .map(|name| dir.join(name))
        .find(|file| file.exists())
        .unwrap_or_else(|| panic!("{} has no lib.rs or main.rs", dir.display()));
    let mut modules = Vec::new();
    let mut pending = vec![(Vec::<String>::new(), root_file)];
    while let Some((path, file)) = pending.pop() {
        let source = fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", file.display()));
        let code = without_inline_modules(&strip_comments_and_strings(&source));
        let own_dir = if path.is_empty() || file.file_name().is_some_and(|name| name == "mod.rs") {
            file.parent().map(Path::to_path_buf).unwrap_or_default()
        } else {
            file.with_extension("")
        };
        for child in declared_children(&code) {
            let flat = own_dir.join(format!("{child}.rs"));
            let nested = own_dir.join(&child).join("mod.rs");
            let child_file = if flat.exists() { flat } else { nested };
            assert!(
                child_file.exists(),
                "{}: `mod {child};` has no file",
                relative(&file)
            );
            let mut child_path = path.clone();
            child_path.push(child);
            pending.push((child_path, child_file));
        }
        modules.push(Module { path, file, code });
    }
    modules
}

/// The module path `text` (`crate::a::b`, `super::x`, `self::x`, or a path that starts
/// at one of the module's own children) names from inside `module`; None for a path
/// into another crate.
fn resolve(text: &str, module: &[String], children: &BTreeSet<String>) -> Option<Vec<String>> {
    let parts: Vec<&str> = text.split("::").filter(|p| !p.is_empty()).collect();
    let first = *parts.first()?;
    let owned = |rest: &[&str]| rest.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match first {
        "crate" => Some(owned(&parts[1..])),
        "super" | "self" => {
            let mut base = module.to_vec();
            let mut rest = &parts[..];
            while let Some(head) = rest.first() {
                match *head {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            base.extend(owned(rest));
            Some(base)
        }
        child if children.contains(child) => {
            let mut base = module.to_vec();
            base.extend(owned(&parts));
            Some(base)
        }
        _ => None,
    }
}

/// Every module path a file's code names: each `…::…` word, and each item of a
/// `use prefix::{a, b::c}` group (which the braces split apart).
fn named_paths(code: &str, module: &Module, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut named: Vec<Vec<String>> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.contains("::"))
        .filter_map(|word| resolve(word, &module.path, children))
        .collect();
    for statement in code.split(';') {
        let Some(tree) = statement.trim().strip_prefix("use ") else {
            continue;
        };
        for (_, item) in use_items(tree) {
            named.extend(resolve(&item, &module.path, children));
        }
    }
    named
}

/// The items of a use tree, one level of braces deep (`a::{b, c::D as E}`): each as
/// (the name it is known by here, its full path).
fn use_items(tree: &str) -> Vec<(String, String)> {
    let tree = tree.trim();
    let (prefix, group) = match tree.split_once('{') {
        Some((prefix, group)) => (prefix.trim_end_matches("::"), group.trim_end_matches('}')),
        None => ("", tree),
    };
    group
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(" as ");
            let path = parts
                .next()?
                .trim()
                .split('{')
                .next()?
                .trim_end_matches("::");
            if path.is_empty() || path == "self" || path.ends_with('*') {
                return None;
            }
            let full = if prefix.is_empty() {
                path.to_string()
            } else {
                format!("{prefix}::{path}")
            };
            let name = match parts.next() {
                Some(alias) => alias.trim().to_string(),
                None => path.rsplit("::").next()?.to_string(),
            };
            Some((name, full))
        })
        .collect()
}

/// A module's `pub use` statements split from the rest of its code (and its `mod`
/// declarations left out): re-exports are passages, not dependencies of the module itself.
fn split_reexports(code: &str) -> (String, Vec<(String, String)>) {
    let mut rest = String::with_capacity(code.len());
    let mut reexports = Vec::new();
    for statement in code.split_inclusive(';') {
        let trimmed = statement.trim_start();
        let tree = trimmed
            .strip_prefix("pub(crate) use ")
            .or_else(|| trimmed.strip_prefix("pub use "));
        let declaration = trimmed
            .strip_prefix("pub(crate) ")
            .or_else(|| trimmed.strip_prefix("pub "))
            .unwrap_or(trimmed)
            .starts_with("mod ");
        match tree {
            Some(tree) => reexports.extend(use_items(tree.trim_end_matches(';'))),
            // `mod name;` declares a child; it is not a use of it.
            None if declaration => {}
            None => rest.push_str(statement),
        }
    }
    (rest, reexports)
}

fn mentions(code: &str, name: &str) -> bool {
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|word| word == name)
}

/// The module file a path lands in: the longest prefix of it that is a module.
fn owner(path: &[String], modules: &BTreeMap<Vec<String>, usize>) -> Option<usize> {
    (0..=path.len())
        .rev()
        .find_map(|len| modules.get(&path[..len].to_vec()).copied())
}

/// The circles of one crate: its strongly connected groups of more than one file.
fn circles(modules: &[Module]) -> Vec<Vec<String>> {
    let index: BTreeMap<Vec<String>, usize> = modules
        .iter()
        .enumerate()
        .map(|(i, m)| (m.path.clone(), i))
        .collect();
    // What each module re-exports, by name, as full module paths.
    let mut reexports: Vec<BTreeMap<String, Vec<String>>> = Vec::with_capacity(modules.len());
    let mut own_code: Vec<String> = Vec::with_capacity(modules.len());
    for module in modules {
        let children: BTreeSet<String> = declared_children(&module.code).into_iter().collect();
        let (rest, items) = split_reexports(&module.code);
        let resolved = items
            .into_iter()
            .filter_map(|(name, path)| Some((name, resolve(&path, &module.path, &children)?)))
            .collect();
        reexports.push(resolved);
        own_code.push(rest);
    }
    // The module that defines what `path` names, seen through re-exports.
    let target_of = |path: &[String]| -> Option<usize> {
        let mut path = path.to_vec();
        for _ in 0..8 {
            let at = owner(&path, &index)?;
            let depth = modules[at].path.len();
            let through = path
                .get(depth)
                .and_then(|name| reexports[at].get(name))
                .filter(|target| target.as_slice() != path.as_slice());
            match through {
                Some(target) => {
                    let mut next = target.clone();
                    next.extend(path[depth + 1..].iter().cloned());
                    path = next;
                }
                None => return Some(at),
            }
        }
        owner(&path, &index)
    };
    let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); modules.len()];
    for (i, module) in modules.iter().enumerate() {
        let children: BTreeSet<String> = declared_children(&module.code).into_iter().collect();
        let mut named = named_paths(&own_code[i], module, &children);
        // A re-exported name the module also uses itself is a dependency after all.
        named.extend(
            reexports[i]
                .iter()
                .filter(|(name, _)| mentions(&own_code[i], name))
                .map(|(_, path)| path.clone()),
        );
        for path in named {
            // From a file to itself is no edge.
            if let Some(target) = target_of(&path).filter(|&target| target != i) {
                edges[i].insert(target);
            }
        }
    }
    strongly_connected(&edges)
        .into_iter()
        .filter(|group| group.len() > 1)
        .map(|group| {
            let mut files: Vec<String> =
                group.iter().map(|&i| relative(&modules[i].file)).collect();
            files.sort();
            files
        })
        .collect()
}

/// Tarjan's algorithm, iterative enough for a few hundred files.
fn strongly_connected(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        groups: Vec<Vec<usize>>,
    }
    fn visit(state: &mut State<'_>, v: usize) {
        state.index[v] = Some(state.next);
        state.low[v] = state.next;
        state.next += 1;
        state.stack.push(v);
        state.on_stack[v] = true;
        let targets: Vec<usize> = state.edges[v].iter().copied().collect();
        for w in targets {
            match state.index[w] {
                None => {
                    visit(state, w);
                    state.low[v] = state.low[v].min(state.low[w]);
                }
                Some(index_w) if state.on_stack[w] => {
                    state.low[v] = state.low[v].min(index_w);
                }
                Some(_) => {}
            }
        }
        if Some(state.low[v]) == state.index[v] {
            let mut group = Vec::new();
            while let Some(w) = state.stack.pop() {
                state.on_stack[w] = false;
                group.push(w);
                if w == v {
                    break;
                }
            }
            state.groups.push(group);
        }
    }
    let mut state = State {
        edges,
        index: vec![None; edges.len()],
        low: vec![0; edges.len()],
        on_stack: vec![false; edges.len()],
        stack: Vec::new(),
        next: 0,
        groups: Vec::new(),
    };
    for v in 0..edges.len() {
        if state.index[v].is_none() {
            visit(&mut state, v);
        }
    }
    state.groups
}

#[test]
fn no_module_imports_in_a_circle() {
    let mut found: Vec<Vec<String>> = Vec::new();
    for (_, dir) in CRATES {
        found.extend(circles(&crate_modules(&root().join(dir))));
    }
    let known: Vec<Vec<String>> = KNOWN_CIRCLES
        .iter()
        .map(|circle| circle.iter().map(|s| s.to_string()).collect())
        .collect();
    let new: Vec<&Vec<String>> = found.iter().filter(|c| !known.contains(c)).collect();
    let gone: Vec<&Vec<String>> = known.iter().filter(|c| !found.contains(c)).collect();
    assert!(
        new.is_empty(),
        "modules import each other in a circle (break it: move what both need below \
         both, or pass it in): {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "a known circle is gone or changed: update KNOWN_CIRCLES in this file to what is \
         left ({found:#?}); it was {gone:#?}"
    );
}

#[test]
fn the_http_surface_reaches_sandboxes_and_store_only_through_the_runtime() {
    let dir = root().join("crates/dispatch/src");
    let mut users = BTreeSet::new();
    for module in crate_modules(&dir) {
        if module.code.contains("runbox_sandbox") || module.code.contains("runbox_store") {
            users.insert(relative(&module.file));
        }
    }
    let manifest = fs::read_to_string(root().join("crates/dispatch/Cargo.toml"))
        .unwrap_or_else(|err| panic!("cannot read crates/dispatch/Cargo.toml: {err}"));
    let known: BTreeSet<String> = KNOWN_LOWER_USES.iter().map(|s| s.to_string()).collect();
    let new: Vec<&String> = users.difference(&known).collect();
    let gone: Vec<&String> = known.difference(&users).collect();
    assert!(
        new.is_empty(),
        "crates/dispatch must reach the sandboxes and the store through runbox_runtime: {new:#?}"
    );
    assert!(
        gone.is_empty(),
        "update KNOWN_LOWER_USES: these files no longer use the lower crates: {gone:#?}"
    );
    if known.is_empty() {
        for lower in ["runbox-sandbox", "runbox-store"] {
            assert!(
                !manifest.contains(lower),
                "crates/dispatch/Cargo.toml still depends on {lower}"
            );
        }
    }
}

#[test]
fn the_checker_finds_a_circle_it_is_shown() {
    let module = |path: &[&str], code: &str| Module {
        path: path.iter().map(|s| s.to_string()).collect(),
        file: root().join(format!("fake/{}.rs", path.join("/"))),
        code: without_inline_modules(&strip_comments_and_strings(code)),
    };
    let modules = vec![
        module(
            &[],
            "mod a;\nmod b;\nmod c;\nmod d;\nfn main() { d::h(); }\n",
        ),
        module(
            &["a"],
            "use crate::b::Thing;\n// crate::c::Nothing in a comment\n",
        ),
        module(
            &["b"],
            "pub struct Thing;\nfn f() { crate::a::g(); let s = \"crate::c\"; }\n",
        ),
        module(&["c"], "use super::{a::g, b};\n"),
        module(
            &["d"],
            "pub fn h() {}\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
    ];
    let found = circles(&modules);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].iter().any(|f| f.ends_with("fake/a.rs")));
    assert!(found[0].iter().any(|f| f.ends_with("fake/b.rs")));
    assert!(
        !found[0].iter().any(|f| f.ends_with("fake/c.rs")),
        "c only uses a and b"
    );
}
