// What the documentation tests read from the sources and the Markdown: error codes, methods,
// routes and settings defined in Rust, and the fenced code blocks of a Markdown file.
import fs from "node:fs";
import path from "node:path";

const SKIPPED_DIRS = new Set(["target", "node_modules", ".git", "build", ".wrangler", "dist"]);

/** Every `.rs` file of the repository (wherever the crates live), as {file, text}. */
export function rustSources(root) {
  const found = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name)) walk(path.join(dir, entry.name));
      } else if (entry.name.endsWith(".rs")) {
        const file = path.join(dir, entry.name);
        found.push({ file: path.relative(root, file), text: fs.readFileSync(file, "utf8") });
      }
    }
  };
  walk(root);
  return found;
}

function sourceDefining(sources, declaration) {
  const hit = sources.find((s) => s.text.includes(declaration));
  if (!hit) throw new Error(`no Rust source declares ${declaration}`);
  return hit.text;
}

/** The body of the first `{ … }` after `start` (balanced braces). */
function blockAfter(text, start) {
  const at = text.indexOf(start);
  if (at < 0) throw new Error(`"${start}" not found`);
  const open = text.indexOf("{", at);
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "{") depth++;
    if (text[i] === "}" && --depth === 0) return text.slice(open + 1, i);
  }
  throw new Error(`unbalanced braces after "${start}"`);
}

function variants(text, enumName) {
  return blockAfter(text, `pub enum ${enumName}`)
    .split("\n")
    .map((l) => l.replace(/\/\/.*/, "").trim().replace(/,$/, ""))
    .filter((l) => /^[A-Z]\w*$/.test(l));
}

/** `Self::Variant => "wire"` pairs of a function in an impl. */
function wireNames(text, fnName) {
  const names = new Map();
  for (const [, variant, wire] of blockAfter(text, `fn ${fnName}`).matchAll(/(?:Self|\w+)::(\w+)\s*=>\s*"([^"]+)"/g)) {
    names.set(variant, wire);
  }
  return names;
}

/** The wire names of every `ErrorCode` variant. */
export function errorCodes(sources) {
  const text = sourceDefining(sources, "pub enum ErrorCode");
  const wire = wireNames(text, "as_str");
  return variants(text, "ErrorCode").map((v) => {
    if (!wire.has(v)) throw new Error(`ErrorCode::${v} has no wire name`);
    return wire.get(v);
  });
}

/** The HTTP status the API layer gives each error code, by wire name. */
export function httpStatusByCode(sources) {
  const codes = sourceDefining(sources, "pub enum ErrorCode");
  const wire = wireNames(codes, "as_str");
  const text = sourceDefining(sources, "fn status(code: ErrorCode)");
  const statuses = new Map();
  for (const [, arm, status] of blockAfter(text, "fn status(code: ErrorCode)").matchAll(/([\w:|\s]+?)=>\s*(\d{3})/g)) {
    for (const [, variant] of arm.matchAll(/ErrorCode::(\w+)/g)) statuses.set(wire.get(variant), Number(status));
  }
  return statuses;
}

/** The JS names of every `StreamMethod`. */
export function methodNames(sources) {
  const text = sourceDefining(sources, "pub enum StreamMethod");
  return [...wireNames(text, "js_name").values()];
}

/** Public route paths: string literals starting with `/` in the HTTP layer. */
export function routePaths(sources) {
  const routes = new Set();
  for (const { file, text } of sources) {
    if (!/(^|\/)api\//.test(file) && !file.endsWith("http.rs")) continue;
    for (const [, literal] of text.replace(/\/\/.*$/gm, "").matchAll(/"(\/[A-Za-z0-9_./-]*)"/g)) routes.add(literal);
  }
  return [...routes];
}

/** Every variable or secret the code or wrangler.toml defines. */
export function configurationNames(sources, wranglerToml) {
  const names = new Set();
  for (const { text } of sources) {
    for (const line of text.split("\n")) {
      if (line.trim().startsWith("//")) continue;
      for (const [, name] of line.matchAll(/"(STREAMS?_[A-Z0-9_]+)"/g)) names.add(name);
      // Names read from the environment under any other prefix: `text(env, "X")`, `env.var("X")`.
      for (const m of line.matchAll(/\benv,\s*"([A-Z][A-Z0-9_]*)"|\.(?:var|secret)\(\s*"([A-Z][A-Z0-9_]*)"/g)) names.add(m[1] ?? m[2]);
    }
  }
  const vars = wranglerToml.split(/^\[/m).find((section) => section.startsWith("vars]"));
  for (const [, name] of (vars ?? "").matchAll(/^([A-Z][A-Z0-9_]*)\s*=/gm)) names.add(name);
  return [...names].sort();
}

/** A `##` section of a Markdown file, up to the next heading of the same or a higher level. */
export function markdownSection(markdown, heading) {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => /^#{1,6} /.test(l) && l.replace(/^#+ /, "").trim() === heading);
  if (start < 0) throw new Error(`no heading "${heading}"`);
  const level = lines[start].match(/^#+/)[0].length;
  const end = lines.findIndex((l, i) => i > start && new RegExp(`^#{1,${level}} `).test(l));
  return lines.slice(start, end < 0 ? undefined : end).join("\n");
}

/**
 * The fenced code blocks of a Markdown file: {lang, code, line, testedBy}. `testedBy` is set by an
 * HTML comment `<!-- tested-by: <file> -->` on the line just before the fence.
 */
export function codeBlocks(markdown) {
  const lines = markdown.split("\n");
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const fence = lines[i].match(/^```(\S*)/);
    if (!fence) continue;
    const end = lines.findIndex((l, j) => j > i && l.startsWith("```"));
    if (end < 0) throw new Error(`unclosed code block at line ${i + 1}`);
    const marker = lines[i - 1]?.match(/^<!--\s*tested-by:\s*(\S+)\s*-->$/);
    blocks.push({ lang: fence[1], code: lines.slice(i + 1, end).join("\n"), line: i + 1, testedBy: marker?.[1] });
    i = end;
  }
  return blocks;
}

/** Every Rust string literal, as a pattern: `{…}` placeholders match any text. */
export function rustMessagePatterns(sources) {
  const patterns = [];
  for (const { text } of sources) {
    for (const [, raw] of text.matchAll(/"((?:[^"\\\n]|\\.)*)"/g)) {
      if (raw.length < 6) continue;
      const literal = raw.replace(/\\(.)/g, "$1");
      const parts = literal.split(/(?<!\{)\{[A-Za-z0-9_:.?]*\}(?!\})/);
      // A literal that is mostly placeholders ("{}: {}") would match any message.
      if (!/[A-Za-z]{3,}/.test(parts.join(" "))) continue;
      const unescape = (part) => part.replaceAll("{{", "{").replaceAll("}}", "}");
      const regex = parts.map((part) => unescape(part).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".+");
      patterns.push(new RegExp(`^${regex}$`));
    }
  }
  return patterns;
}
