// The kiosk page's own script, loaded before textual.js (xterm.js and textual-serve's
// protocol). It takes over three things from it:
//  - the start: textual.js starts on window.onload; here it starts once the font is
//    loaded and sized so that 80x24 cells or more fit the window, and the terminal is
//    given the keyboard at once (at a kiosk nobody clicks first);
//  - the socket: keys are held, in order, until the client process has drawn its first
//    screen (before that they would reach no field), then sent;
//  - the end: when the client process ends the page says so, and any key reloads it,
//    which starts a new client process (a new session).
"use strict";
(() => {
  const MIN_COLS = 80;
  const MIN_ROWS = 24;
  const FONT = '"Roboto Mono"';
  const SIZES = [40, 36, 32, 28, 26, 24, 22, 20, 18, 17, 16, 15, 14, 13, 12, 11, 10];
  // Bytes of output after which the client has drawn its first screen (its set-up
  // sequences come first and are far shorter; one 80x24 screen is several kilobytes).
  const FIRST_SCREEN_BYTES = 2048;

  const held = []; // stdin messages waiting for the client's first screen
  let drawn = false;
  let socket = null;
  let ended = false;

  const hold = (text) => held.push(JSON.stringify(["stdin", text]));

  // --- keys typed before the terminal exists ------------------------------------------
  const EARLY_KEYS = { Enter: "\r", Tab: "\t", Backspace: "\x7f", Escape: "\x1b" };
  function earlyKey(event) {
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    let text = EARLY_KEYS[event.key];
    if (text === "\t" && event.shiftKey) text = "\x1b[Z";
    if (text === undefined && [...event.key].length === 1) text = event.key;
    if (text === undefined) return;
    event.preventDefault();
    hold(text);
  }
  window.addEventListener("keydown", earlyKey, true);

  // --- the socket ---------------------------------------------------------------------
  function release() {
    if (drawn || socket === null) return;
    drawn = true;
    for (const message of held.splice(0)) socket.send(message);
  }

  const Base = window.WebSocket;
  class HoldingSocket extends Base {
    constructor(url, protocols) {
      super(url, protocols);
      socket = this;
      this.waiting = []; // anything sent while connecting
      let seen = 0;
      this.addEventListener("open", () => {
        for (const message of this.waiting.splice(0)) this.send(message);
      });
      this.addEventListener("message", (event) => {
        if (drawn || typeof event.data === "string") return;
        seen += event.data.byteLength;
        if (seen >= FIRST_SCREEN_BYTES) setTimeout(release, 0); // after xterm has it
      });
      this.addEventListener("close", end);
    }

    send(message) {
      if (this.readyState === Base.CONNECTING) {
        this.waiting.push(message);
      } else if (!drawn && message.startsWith('["stdin"')) {
        held.push(message);
      } else {
        super.send(message);
      }
    }
  }
  window.WebSocket = HoldingSocket;

  // --- the end ------------------------------------------------------------------------
  function end() {
    if (ended) return;
    ended = true;
    document.body.classList.add("-closed");
    const input = document.querySelector(".xterm-helper-textarea");
    if (input) input.blur();
    window.addEventListener(
      "keydown",
      (event) => {
        event.preventDefault();
        event.stopPropagation();
        window.location.reload();
      },
      true,
    );
  }

  // --- sizing -------------------------------------------------------------------------
  function cell(size) {
    const probe = document.createElement("span");
    probe.textContent = "W".repeat(10);
    probe.style.cssText =
      `position:absolute;visibility:hidden;white-space:pre;line-height:normal;` +
      `font-family:${FONT};font-size:${size}px`;
    document.body.appendChild(probe);
    const box = probe.getBoundingClientRect();
    probe.remove();
    return { width: box.width / 10, height: box.height };
  }

  function fontSize() {
    const width = window.innerWidth;
    const height = window.innerHeight;
    for (const size of SIZES) {
      const c = cell(size);
      if (Math.ceil(c.width) * MIN_COLS <= width && Math.ceil(c.height) * MIN_ROWS <= height) {
        return size;
      }
    }
    return SIZES[SIZES.length - 1];
  }

  // --- the start ----------------------------------------------------------------------
  let start = null;
  Object.defineProperty(window, "onload", {
    configurable: true,
    get: () => start,
    set: (handler) => {
      start = handler;
    },
  });

  function focusTerminal() {
    const input = document.querySelector(".xterm-helper-textarea");
    if (input && !ended) input.focus({ preventScroll: true });
    return input;
  }

  window.addEventListener("load", async (event) => {
    try {
      await document.fonts.load(`16px ${FONT}`);
    } catch (error) {
      console.warn("font", error); // the machine's monospace font then
    }
    const terminal = document.getElementById("terminal");
    terminal.dataset.fontSize = String(fontSize());
    terminal.dataset.sessionWebsocketUrl =
      (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + "/ws";
    if (start) start(event);
    if (focusTerminal()) window.removeEventListener("keydown", earlyKey, true);
    // At a kiosk the terminal keeps the keyboard: a touch or click elsewhere gives it back.
    document.addEventListener("pointerup", focusTerminal);
    window.addEventListener("focus", focusTerminal);
  });
})();
