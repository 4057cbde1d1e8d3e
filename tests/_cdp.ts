// A tiny Chrome DevTools Protocol client: headless Chromium driven over its WebSocket (Deno's own), no npm driver
// and no downloaded browser. One page per browser; commands, events, in-page waits, clicks and screenshots.

/** A headless Chromium with one page. */
export interface Browser extends AsyncDisposable {
  /** Sends a command to the page; resolves with its result. */
  // deno-lint-ignore no-explicit-any
  send(method: string, params?: Record<string, unknown>): Promise<any>;
  /** Loads a URL and waits for its load event. */
  goto(url: string): Promise<void>;
  /** Evaluates an expression in the page (promises awaited) and returns its JSON value. */
  // deno-lint-ignore no-explicit-any
  eval(expression: string): Promise<any>;
  /**
   * Waits inside the page until `expression` is truthy (checked every 100 ms, at most `ms`), returning its value.
   */
  // deno-lint-ignore no-explicit-any
  waitFor(expression: string, ms: number, what?: string): Promise<any>;
  /** Clicks the centre of the first element matching `selector` with real mouse events. */
  click(selector: string): Promise<void>;
  /** Types text into the focused element. */
  type(text: string): Promise<void>;
  /** Sets the files of an `<input type=file>`. */
  setFiles(selector: string, paths: string[]): Promise<void>;
  /** A PNG of the page. */
  screenshot(): Promise<Uint8Array>;
  /** Console messages and uncaught exceptions of the page so far. */
  console: string[];
}

/** Starts headless Chromium with a fresh profile in `profileDir` and opens one page. */
export async function launchChromium(profileDir: string): Promise<Browser> {
  const child = new Deno.Command("/usr/bin/chromium", {
    args: [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-extensions",
      "--disable-default-apps",
      "--no-first-run",
      "--no-default-browser-check",
      "--mute-audio",
      "--window-size=1280,800",
      `--user-data-dir=${profileDir}`,
      "--remote-debugging-port=0",
      "about:blank",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let err = "";
  let wsUrl: string | undefined;
  const deadline = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    while (!wsUrl) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`chromium exited before its DevTools URL: ${err.slice(-2000)}`);
      err += value;
      wsUrl = /DevTools listening on (ws:\/\/\S+)/.exec(err)?.[1];
    }
  } finally {
    clearTimeout(deadline);
  }
  const drain = (async () => {
    try {
      for (;;) if ((await reader.read()).done) break;
    } catch { /* killed */ }
  })();

  const ws = new WebSocket(wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("cannot connect to chromium's DevTools"));
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners = new Set<(method: string, params: Record<string, unknown>) => void>();
  ws.onmessage = (e) => {
    const msg = JSON.parse(String(e.data));
    if (msg.id !== undefined) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(`${msg.error.message} ${msg.error.data ?? ""}`));
      else p?.resolve(msg.result);
    } else {
      for (const l of listeners) l(msg.method, msg.params);
    }
  };
  const closed = new Promise<void>((resolve) => ws.onclose = () => resolve());
  const raw = (
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
    // deno-lint-ignore no-explicit-any
  ): Promise<any> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  const { targetId } = await raw("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await raw("Target.attachToTarget", { targetId, flatten: true });
  const send = (method: string, params: Record<string, unknown> = {}) =>
    raw(method, params, sessionId);
  const consoleLines: string[] = [];
  listeners.add((method, params) => {
    if (method === "Runtime.consoleAPICalled") {
      const args = params.args as { value?: unknown; description?: string }[];
      consoleLines.push(`${params.type}: ${args.map((a) => a.value ?? a.description).join(" ")}`);
    } else if (method === "Runtime.exceptionThrown") {
      const d = params.exceptionDetails as { text: string; exception?: { description?: string } };
      consoleLines.push(`exception: ${d.exception?.description ?? d.text}`);
    }
  });
  await send("Page.enable");
  await send("Runtime.enable");
  await send("Emulation.setDeviceMetricsOverride", {
    width: 1280,
    height: 800,
    deviceScaleFactor: 1,
    mobile: false,
  });

  const evaluate = async (expression: string) => {
    const r = await send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    if (r.exceptionDetails) {
      throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
    }
    return r.result.value;
  };
  const browser: Browser = {
    send,
    console: consoleLines,
    async goto(url) {
      const loaded = new Promise<void>((resolve) => {
        const l = (method: string) => {
          if (method === "Page.loadEventFired") {
            listeners.delete(l);
            resolve();
          }
        };
        listeners.add(l);
      });
      const r = await send("Page.navigate", { url });
      if (r.errorText) throw new Error(`cannot load ${url}: ${r.errorText}`);
      await loaded;
    },
    eval: evaluate,
    async waitFor(expression, ms, what) {
      const script = `new Promise((resolve, reject) => {
        const until = Date.now() + ${ms};
        const check = () => {
          let v;
          try { v = (${expression}); } catch (e) { v = undefined; }
          if (v) return resolve(v);
          if (Date.now() > until) return reject(new Error("timed out after ${ms} ms waiting for " + ${
        JSON.stringify(what ?? expression)
      }));
          setTimeout(check, 100);
        };
        check();
      })`;
      return await evaluate(script);
    },
    async click(selector) {
      const box = await evaluate(`(() => {
        const e = document.querySelector(${JSON.stringify(selector)});
        if (!e) return null;
        e.scrollIntoView({ block: "center" });
        const r = e.getBoundingClientRect();
        return { x: r.x + r.width / 2, y: r.y + r.height / 2 };
      })()`);
      if (!box) throw new Error(`nothing matches ${selector}`);
      const mouse = (type: string) =>
        send("Input.dispatchMouseEvent", {
          type,
          x: box.x,
          y: box.y,
          button: "left",
          clickCount: type === "mouseMoved" ? 0 : 1,
        });
      await mouse("mouseMoved");
      // press and release sent together, as a quick click (a page that redraws in between would lose it)
      await Promise.all([mouse("mousePressed"), mouse("mouseReleased")]);
    },
    async type(text) {
      await send("Input.insertText", { text });
    },
    async setFiles(selector, paths) {
      const { root } = await send("DOM.getDocument", { depth: 0 });
      const { nodeId } = await send("DOM.querySelector", { nodeId: root.nodeId, selector });
      if (!nodeId) throw new Error(`nothing matches ${selector}`);
      await send("DOM.setFileInputFiles", { nodeId, files: paths });
    },
    async screenshot() {
      const { data } = await send("Page.captureScreenshot", { format: "png" });
      return Uint8Array.fromBase64(data);
    },
    async [Symbol.asyncDispose]() {
      try {
        await Promise.race([raw("Browser.close"), closed]);
      } catch { /* gone */ }
      ws.close();
      await closed;
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await drain;
    },
  };
  return browser;
}
