/**
 * The token's slot, found by its label, and the pool of logged-in read/write
 * sessions on it: opening (and logging in) lazily per pool slot, handing
 * sessions out one caller at a time, dropping lost ones and noticing that a
 * module re-initialize made every handle stale. The manager decides when a
 * lost session means an outage; this file only keeps the sessions.
 */
import type { PKCS11 } from 'pkcs11js';
import { AnchorageError } from '@anchorage/client/errors';
import type { Logger } from '../../../common/log.js';
import { closedError } from '../ec.js';
import { ckr, loginError, p11Error, SLOT_LOST } from './errors.js';
import { P, type Handle, type Pkcs11Module } from './module.js';

function trimLabel(label: string): string {
  return label.replace(/[\s\u0000]+$/, '').trim();
}

/** The slot holding the initialized token labelled `tokenLabel`; not_found lists the labels there are. */
export function findSlot(lib: PKCS11, tokenLabel: string): Handle {
  let slots: Handle[];
  try {
    slots = lib.C_GetSlotList(true);
  } catch (err) {
    throw p11Error('listing slots', err);
  }
  const labels: string[] = [];
  for (const slot of slots) {
    let info;
    try {
      info = lib.C_GetTokenInfo(slot);
    } catch {
      continue; // a slot that vanished between the two calls
    }
    if ((info.flags & P.CKF_TOKEN_INITIALIZED) === 0) continue;
    const label = trimLabel(info.label);
    if (label === tokenLabel) return slot;
    labels.push(label);
  }
  const have = labels.length === 0 ? 'no initialized tokens' : `tokens: ${labels.sort().map((l) => JSON.stringify(l)).join(', ')}`;
  throw new AnchorageError('not_found', `pkcs11: no token labelled "${tokenLabel}" (${have})`);
}

/** One place in the pool. */
export interface PoolSession {
  /** Open session, or null when it must be (re)opened before use. */
  handle: Handle | null;
  /** Module generation the handle belongs to; a handle of an older one is dropped, never closed. */
  gen: number;
  /** True once this slot has held a session: the next open is a reopen. */
  used: boolean;
}

/** CK_STATE of a read/write session whose token is logged in as the user (pkcs11js does not export CKS_*). */
const CKS_RW_USER_FUNCTIONS = 3;

/** A fixed-size pool of sessions on one token, logged in as the user. */
export class SessionPool {
  readonly tokenLabel: string;
  /** The token's slot; found again by label when a session says the token was re-inserted, or after a re-initialize. */
  slot: Handle;
  /** Set when the slot must be found again before the next session is opened. */
  slotStale = false;
  /** Every place of the pool, open or not. */
  readonly sessions: PoolSession[];
  readonly #mod: Pkcs11Module;
  readonly #lib: PKCS11;
  readonly #pin: string;
  readonly #logger: Logger;
  readonly #free: PoolSession[];
  readonly #waiters: Array<{ resolve: (s: PoolSession) => void; reject: (e: unknown) => void }> = [];
  #busy = 0;
  #onDrained: (() => void) | undefined;
  #closed = false;
  #reopens = 0;

  constructor(mod: Pkcs11Module, slot: Handle, size: number, tokenLabel: string, pin: string, logger: Logger) {
    this.tokenLabel = tokenLabel;
    this.#pin = pin;
    this.#logger = logger;
    this.#mod = mod;
    this.#lib = mod.lib;
    this.slot = slot;
    this.sessions = Array.from({ length: size }, () => ({ handle: null, gen: mod.generation, used: false }));
    this.#free = [...this.sessions];
  }

  /** Sessions handed out and not yet released. */
  get busy(): number {
    return this.#busy;
  }

  /** Callers waiting for a session to be released. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** How many times a lost session was replaced. */
  get reopens(): number {
    return this.#reopens;
  }

  /** Refuses every later acquire and rejects the callers waiting for a session. */
  shutDown(): void {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w.reject(closedError('pkcs11'));
  }

  /** Resolves once the last session handed out is released; call only while busy > 0. */
  drained(): Promise<void> {
    return new Promise<void>((resolve) => (this.#onDrained = resolve));
  }

  /** Drops a session the token no longer honours; the next ensureOpen opens a new one. */
  discard(ps: PoolSession, code: string): void {
    if (ps.handle && ps.gen === this.#mod.generation) {
      try {
        this.#lib.C_CloseSession(ps.handle);
      } catch {
        // it is already dead; that is why we are here
      }
    }
    ps.handle = null;
    if (SLOT_LOST.has(code)) this.slotStale = true;
    this.#logger.warn({ token: this.tokenLabel, code }, 'pkcs11: session lost; reopening');
  }

  /** Returns the slot's open session, opening it (and logging in) if needed. Synchronous on purpose: no other op can interleave. */
  ensureOpen(ps: PoolSession): Handle {
    const gen = this.#mod.generation;
    if (ps.handle) {
      if (ps.gen === gen) return ps.handle;
      // Opened before a re-initialize: the number may now be someone else's session.
      ps.handle = null;
      this.slotStale = true;
    }
    if (this.slotStale) {
      this.slot = findSlot(this.#lib, this.tokenLabel);
      this.slotStale = false;
    }
    let s: Handle;
    try {
      s = this.#lib.C_OpenSession(this.slot, P.CKF_RW_SESSION | P.CKF_SERIAL_SESSION);
    } catch (err) {
      if (SLOT_LOST.has(ckr(err) ?? '')) this.slotStale = true;
      throw p11Error(`opening a session on token "${this.tokenLabel}"`, err);
    }
    try {
      // Login is per application and token, not per session: only the first
      // session (or the first after the token logged us out) needs it.
      if (this.#lib.C_GetSessionInfo(s).state !== CKS_RW_USER_FUNCTIONS) {
        try {
          this.#lib.C_Login(s, P.CKU_USER, this.#pin);
        } catch (err) {
          if (ckr(err) !== 'CKR_USER_ALREADY_LOGGED_IN') throw loginError(this.tokenLabel, err);
        }
      }
    } catch (err) {
      try {
        this.#lib.C_CloseSession(s);
      } catch {
        // the login error is the one to report
      }
      throw err instanceof AnchorageError ? err : p11Error(`opening a session on token "${this.tokenLabel}"`, err);
    }
    if (ps.used) this.#reopens++;
    ps.used = true;
    ps.handle = s;
    ps.gen = gen;
    return s;
  }

  /** Takes a free session of the pool, or waits for one; pair with release(). */
  acquire(): Promise<PoolSession> {
    if (this.#closed) return Promise.reject(closedError('pkcs11'));
    const ps = this.#free.pop();
    if (ps) {
      this.#busy++;
      return Promise.resolve(ps);
    }
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  release(ps: PoolSession): void {
    const next = this.#waiters.shift();
    if (next && !this.#closed) {
      next.resolve(ps); // handed over: still busy
      return;
    }
    this.#free.push(ps);
    this.#busy--;
    if (this.#busy === 0 && this.#onDrained) this.#onDrained();
  }

  /** Closes every open session of the current module generation; older handles are only dropped. */
  closeAll(): void {
    for (const ps of this.sessions) {
      if (!ps.handle) continue;
      if (ps.gen === this.#mod.generation && this.#mod.initialized) {
        try {
          this.#lib.C_CloseSession(ps.handle);
        } catch {
          // closing anyway
        }
      }
      ps.handle = null;
    }
  }
}
