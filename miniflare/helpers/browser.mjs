// Headless Chromium for browser tests: the Debian package at /usr/bin/chromium, driven by
// playwright-core (never a browser download).
//
//   const browser = await launchBrowser();      // installs chromium with apt-get when missing
//   const page = await newPage(browser);        // records console errors and page errors
//   await page.goto(url);
//   ...
//   assertNoConsoleErrors(page);
//   await browser.close();
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { chromium } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";

/** Installs the OS package when the binary is missing (we run as root); throws when that fails. */
export function ensureChromium() {
  if (fs.existsSync(CHROMIUM_PATH)) return;
  try {
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], { stdio: "inherit" });
  } catch {
    execFileSync("apt-get", ["update"], { stdio: "inherit" });
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], { stdio: "inherit" });
  }
  if (!fs.existsSync(CHROMIUM_PATH)) {
    throw new Error(`browser tests need ${CHROMIUM_PATH}; "apt-get install -y chromium" did not provide it`);
  }
}

/** A headless Chromium; `args` are added to the sandbox-less defaults. */
export async function launchBrowser({ args = [] } = {}) {
  ensureChromium();
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ["--no-sandbox", ...args] });
}

const consoleErrors = new WeakMap();

/**
 * A page in a fresh context (its own storage) that records every console error and uncaught page
 * error; read them with consoleErrorsOf(page) or assert none with assertNoConsoleErrors(page).
 * contextOptions go to browser.newContext (e.g. {viewport: {width: 1280, height: 800}}).
 */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  watchConsole(page);
  return page;
}

/** Start recording console errors of a page (newPage does this already). */
export function watchConsole(page) {
  if (consoleErrors.has(page)) return;
  const errors = [];
  consoleErrors.set(page, errors);
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console.error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.stack ?? err.message}`));
}

/** The console errors and page errors a page recorded so far. */
export function consoleErrorsOf(page) {
  return consoleErrors.get(page) ?? [];
}

export function assertNoConsoleErrors(page) {
  assert.deepEqual(consoleErrorsOf(page), [], "the page logged errors");
}
