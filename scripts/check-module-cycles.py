#!/usr/bin/env python3
"""Fails when modules inside any workspace crate import each other in a circle.

Each source file is one node (inline modules such as `mod tests { .. }` belong to their file).
A file depends on another when it names a path into that file's module: `crate::a::b::Item`,
`super::x`, `self::y`, or a `use` group such as `crate::{a, b::{c, d}}`; the edge goes to the
deepest module of the path that exists. `mod x;` declarations are not edges (a parent owns its
children; that alone is no cycle), but a parent that re-exports from a child while the child uses
the parent is one.

Usage: check-module-cycles.py [CRATE_DIR ...]  (default: every member of the workspace). Prints
each cycle with its files and exits 1 when there is any; `--graph` prints every edge too;
`--self-test` checks the checker on a small crate with a cycle and without.
"""

import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def workspace_crates():
    """Directories of the workspace members (read from the root Cargo.toml's members list)."""
    with open(os.path.join(ROOT, "Cargo.toml"), encoding="utf-8") as manifest:
        text = manifest.read()
    members = re.search(r"members\s*=\s*\[(.*?)\]", text, re.S).group(1)
    return [os.path.join(ROOT, m) for m in re.findall(r'"([^"]+)"', members)]


def strip_comments_and_strings(source):
    """The source with comments, string and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if source.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif source.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if source[i] == "\n" else "")
                    i += 1
        elif c == "r" and re.match(r'r#*"', source[i:i + 10]) and not re.match(r"\w", source[i - 1:i] or " "):
            hashes = re.match(r'r(#*)"', source[i:]).group(1)
            end = source.find('"' + hashes, i + len(hashes) + 2)
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and source[i] != '"':
                i += 2 if source[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x[0-9a-fA-F]{2}'", source[i:i + 12]):
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x[0-9a-fA-F]{2}'", source[i:i + 12])
            i += len(m.group(0))
            out.append("' '")
        else:
            out.append(c)
            i += 1
    # `pub(in crate::a)` names where an item is visible, not a dependency.
    return re.sub(r"\bpub\s*\(\s*in\s+[^)]*\)", "pub", "".join(out))


def crate_files(crate_dir):
    """The crate roots of a package: its library, its main binary and those under src/bin."""
    roots = []
    src = os.path.join(crate_dir, "src")
    for name in ("lib.rs", "main.rs"):
        if os.path.exists(os.path.join(src, name)):
            roots.append(os.path.join(src, name))
    bins = os.path.join(src, "bin")
    if os.path.isdir(bins):
        for entry in sorted(os.listdir(bins)):
            path = os.path.join(bins, entry)
            if entry.endswith(".rs"):
                roots.append(path)
            elif os.path.exists(os.path.join(path, "main.rs")):
                roots.append(os.path.join(path, "main.rs"))
    return roots


def module_tree(root_file):
    """Every file reachable from a crate root through `mod x;`, keyed by module path."""
    files = {}

    def visit(path, module, is_dir_owner):
        files[module] = path
        with open(path, encoding="utf-8") as f:
            code = strip_comments_and_strings(f.read())
        base = os.path.dirname(path) if is_dir_owner else os.path.splitext(path)[0]
        for m in re.finditer(r'(#\[path\s*=\s*""\]\s*)?\bmod\s+(r#)?(\w+)\s*;', code):
            name = m.group(3)
            for candidate, owner in ((os.path.join(base, name + ".rs"), False),
                                     (os.path.join(base, name, "mod.rs"), True)):
                if os.path.exists(candidate):
                    visit(candidate, module + (name,), owner)
                    break

    # A crate root owns the folder it sits in (src/lib.rs, src/bin/x/main.rs, src/bin/y.rs).
    visit(root_file, (), True)
    return files


PATH_RE = re.compile(r"\b(crate|super|self)((?:\s*::\s*(?:\w+|\{))+)")


def expand_group(text, start):
    """Parses a `{a, b::c, d::{e, f}}` group at text[start] == '{'; returns (paths, end)."""
    paths, current, i = [], [], start + 1
    token = ""
    while i < len(text):
        c = text[i]
        if c == "{":
            inner, i = expand_group(text, i)
            paths.extend(current + p for p in inner)
            current, token = [], ""
            continue
        if c in ",}":
            if token.strip():
                current.append(token.strip())
            if current:
                paths.append(current)
            current, token = [], ""
            if c == "}":
                return paths, i + 1
        elif text.startswith("::", i):
            if token.strip():
                current.append(token.strip())
            token = ""
            i += 1
        else:
            token += c
        i += 1
    return paths, i


def referenced_paths(code):
    """(offset, anchor, [segments...]) for each crate/super/self path in the code."""
    for m in PATH_RE.finditer(code):
        anchor, rest = m.group(1), m.group(2)
        segments = []
        pos = m.start(2)
        text = rest
        parts = re.findall(r"\s*::\s*(\w+|\{)", text)
        for p in parts:
            if p == "{":
                brace = code.find("{", pos)
                group, _ = expand_group(code, brace)
                for g in group:
                    yield m.start(), anchor, segments + [s.split(" as ")[0].strip() for s in g]
                break
            segments.append(p)
        else:
            yield m.start(), anchor, segments


def inline_module_at(code, offset):
    """The inline module path (names of `mod x { .. }` blocks) enclosing offset."""
    stack, depth = [], 0
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{|\{|\}", code[:offset]):
        if m.group(0).startswith("mod"):
            depth += 1
            stack.append((m.group(1), depth))
        elif m.group(0) == "{":
            depth += 1
        else:
            if stack and stack[-1][1] == depth:
                stack.pop()
            depth -= 1
    return tuple(name for name, _ in stack)


def absolute(here, anchor, segments):
    """The absolute module path of a path written in module `here`."""
    if anchor == "crate":
        base = ()
    elif anchor == "self":
        base = here
    else:
        base = here[:-1]
        while segments and segments[0] == "super":
            segments = segments[1:]
            base = base[:-1]
    return base + tuple(s for s in segments if s not in ("self", "*"))


def use_declarations(code, module, files):
    """name -> absolute path of each item a module's `use` declarations bring into it."""
    names = {}
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        text = "{" + m.group(1) + "}"
        group, _ = expand_group(text, 0)
        for segments in group:
            segments = [s.strip() for s in segments if s.strip()]
            if not segments:
                continue
            last = segments[-1]
            alias = last.split(" as ")[-1].strip()
            segments[-1] = last.split(" as ")[0].strip()
            head = segments[0]
            here = module + inline_module_at(code, m.start())
            if head in ("crate", "self", "super"):
                anchor, rest = head, segments[1:]
            elif here + (head,) in files:
                anchor, rest = "self", segments
            else:
                continue  # another crate
            if alias in ("*", "self") or here != module:
                continue  # a glob, or an import inside an inline module (tests): not a re-export
            names[alias] = absolute(here, anchor, rest)
    return names


def edges_of(files):
    """Edges file -> file inside one crate; paths through a re-export go to the item's module."""
    codes = {}
    for module, path in files.items():
        with open(path, encoding="utf-8") as f:
            codes[module] = strip_comments_and_strings(f.read())
    imports = {module: use_declarations(code, module, files) for module, code in codes.items()}

    def file_of(full, depth=0):
        for k in range(len(full), -1, -1):
            if full[:k] in files:
                module = full[:k]
                rest = full[k:]
                if rest and rest[0] in imports[module] and depth < 8:
                    target = imports[module][rest[0]]
                    if target != full:
                        return file_of(target + rest[1:], depth + 1)
                return files[module]
        return None

    edges = {}
    for module, path in files.items():
        code = codes[module]
        found = list(referenced_paths(code))
        # Paths that start at a child module (`use child::Item;`, `child::f()`) name it directly.
        children = {n[-1] for n in files if len(n) == len(module) + 1 and n[:len(module)] == module}
        for m in re.finditer(r"(?<![\w:])(\w+)\s*::\s*(\w+)", code):
            if m.group(1) in children:
                found.append((m.start(), "self", [m.group(1), m.group(2)]))
        targets = set()
        for offset, anchor, segments in found:
            here = module + inline_module_at(code, offset)
            target = file_of(absolute(here, anchor, list(segments)))
            if target is not None and target != path:
                targets.add(target)
        edges[path] = targets
    return edges


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def one_cycle(component, edges):
    """A shortest closed walk through the component, to show how the circle closes."""
    members = set(component)
    start = component[0]
    from collections import deque
    previous = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(edges[v]):
            if w == start:
                walk = [v]
                while previous[walk[-1]] is not None:
                    walk.append(previous[walk[-1]])
                return list(reversed(walk)) + [start]
            if w in members and w not in previous:
                previous[w] = v
                queue.append(w)
    return component


def self_test():
    """The check itself: a crate whose modules import each other in a circle (through a parent
    that re-exports its child, the commonest way) is caught, naming both files; the same crate
    with the shared item in a module of its own is not."""
    import tempfile
    with tempfile.TemporaryDirectory() as root:
        src = os.path.join(root, "src")
        os.makedirs(os.path.join(src, "store"))
        files = {
            "lib.rs": "pub mod store;\npub use store::Store;\n",
            "store/mod.rs": "mod sqlite;\npub use sqlite::Sqlite;\n/// shared\npub struct Store;\n",
            "store/sqlite.rs": "use super::Store;\npub struct Sqlite(Store);\n",
        }
        for name, text in files.items():
            with open(os.path.join(src, name), "w", encoding="utf-8") as f:
                f.write(text)
        tree = module_tree(os.path.join(src, "lib.rs"))
        found = cycles(edges_of(tree))
        names = sorted(os.path.relpath(p, src) for c in found for p in c)
        assert names == ["store/mod.rs", "store/sqlite.rs"], names
        with open(os.path.join(src, "store/mod.rs"), "w", encoding="utf-8") as f:
            f.write("mod records;\nmod sqlite;\npub use records::Store;\npub use sqlite::Sqlite;\n")
        with open(os.path.join(src, "store/records.rs"), "w", encoding="utf-8") as f:
            f.write("/// shared\npub struct Store;\n")
        with open(os.path.join(src, "store/sqlite.rs"), "w", encoding="utf-8") as f:
            f.write("use super::records::Store;\npub struct Sqlite(Store);\n")
        assert not cycles(edges_of(module_tree(os.path.join(src, "lib.rs"))))
    print("self-test: a cycle is found and named, its fix is not flagged")


def main(argv):
    if "--self-test" in argv:
        self_test()
        return 0
    show_graph = "--graph" in argv
    crates = [a for a in argv if not a.startswith("--")] or workspace_crates()
    failed = False
    for crate_dir in crates:
        for root in crate_files(crate_dir):
            files = module_tree(root)
            edges = edges_of(files)
            rel = lambda p: os.path.relpath(p, ROOT)
            if show_graph:
                for v in sorted(edges):
                    for w in sorted(edges[v]):
                        print(f"{rel(v)} -> {rel(w)}")
            for component in cycles(edges):
                failed = True
                walk = one_cycle(component, edges)
                print(f"module cycle in {rel(crate_dir)} ({len(component)} files):")
                for p in component:
                    print(f"  {rel(p)}")
                print("  e.g. " + " -> ".join(rel(p) for p in walk))
    if failed:
        print("modules import each other in a circle: move what both need into a module of its own")
        return 1
    print(f"no module cycles in {len(crates)} crates")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
