/*
 * One PKCS#11 signature (C_SignInit then C_Sign) as a single call on the
 * libuv threadpool.
 *
 * pkcs11js offers C_Sign asynchronously but C_SignInit only synchronously,
 * and C_SignInit is the costly half for a token key: SoftHSM2 reads the key
 * object, decrypts its value and builds the signing key there (about 30 us
 * alone, 50+ us while other sessions sign). Run on the event loop, that
 * bounded the server's whole minting rate. Here the event loop only copies
 * the digest and queues the work.
 *
 * The module must already be loaded and C_Initialize'd by pkcs11js in this
 * process: this addon opens the same shared object again (its own reference,
 * so the module stays mapped while a signature runs) and takes the function
 * list; it never initializes, finalizes, logs in or opens sessions. Handles
 * are pkcs11js's: Buffers holding a CK_ULONG.
 *
 *   open(path) -> module          (throws Error on dlopen/dlsym failure)
 *   sign(module, session, key, mechanism, data) -> Promise<Buffer>
 *     resolves to the signature (C_Sign gets a buffer of MAX_SIG bytes, so
 *     it never ends with CKR_BUFFER_TOO_SMALL, which would leave the
 *     operation active on the session); rejects with an Error whose `rv` is
 *     the CK_RV and `fn` the function ("C_SignInit" or "C_Sign") that
 *     returned it. Throws (nothing queued) when the session already has a
 *     signature in flight from this module object: PKCS#11 allows one
 *     operation per session, and SoftHSM2 corrupts itself rather than refuse.
 *   close(module)                 (drops this addon's reference; the module
 *                                  object must not be used afterwards)
 */
#include <dlfcn.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include "pkcs11/pkcs11.h"
#include "napi-args.h"

#define MAX_DATA 512   /* a digest, or a short message for mechanisms that hash themselves */
#define MAX_SIG 1024   /* 2 x P-521 field, or an RSA-8192 signature */

typedef struct {
  void *dl;
  CK_FUNCTION_LIST_PTR fl;
  int closed;
  int inflight;
  /* Sessions with a signature in flight. PKCS#11 forbids two operations on
   * one session at once, and a module may corrupt itself rather than refuse
   * (SoftHSM2 does), so a second one is refused here. Only the event loop's
   * thread reads or writes this (in Sign and in complete). */
  CK_SESSION_HANDLE *busy;
  size_t nbusy;
  size_t cap;
} module_t;

static int session_busy(const module_t *mod, CK_SESSION_HANDLE s) {
  for (size_t i = 0; i < mod->nbusy; i++)
    if (mod->busy[i] == s) return 1;
  return 0;
}

static int mark_busy(module_t *mod, CK_SESSION_HANDLE s) {
  if (mod->nbusy == mod->cap) {
    size_t cap = mod->cap ? mod->cap * 2 : 16;
    CK_SESSION_HANDLE *grown = realloc(mod->busy, cap * sizeof *grown);
    if (!grown) return 0;
    mod->busy = grown;
    mod->cap = cap;
  }
  mod->busy[mod->nbusy++] = s;
  return 1;
}

static void mark_idle(module_t *mod, CK_SESSION_HANDLE s) {
  for (size_t i = 0; i < mod->nbusy; i++) {
    if (mod->busy[i] == s) {
      mod->busy[i] = mod->busy[--mod->nbusy];
      return;
    }
  }
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref module_ref;
  module_t *mod;
  CK_SESSION_HANDLE session;
  CK_OBJECT_HANDLE key;
  CK_MECHANISM_TYPE mechanism;
  CK_BYTE data[MAX_DATA];
  CK_ULONG data_len;
  CK_BYTE sig[MAX_SIG];
  CK_ULONG sig_len;
  CK_RV rv;
  const char *fn;
} job_t;

static int get_handle(napi_env env, napi_value v, CK_ULONG *out) {
  void *data;
  size_t len;
  if (!get_bytes(env, v, &data, &len) || len != sizeof(CK_ULONG)) return 0;
  memcpy(out, data, sizeof(CK_ULONG));
  return 1;
}

static void finalize_module(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  module_t *mod = data;
  if (!mod->closed && mod->dl) dlclose(mod->dl);
  free(mod->busy);
  free(mod);
}

static napi_value Open(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) {
    return throw_type(env, "p11sign: expected (modulePath)");
  }
  char path[4096];
  size_t len;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1) {
    return throw_type(env, "p11sign: modulePath must be a non-empty string");
  }
  void *dl = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
  if (!dl) {
    napi_throw_error(env, NULL, dlerror());
    return NULL;
  }
  CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
  CK_FUNCTION_LIST_PTR fl = NULL;
  if (!get || get(&fl) != CKR_OK || !fl || !fl->C_SignInit || !fl->C_Sign) {
    dlclose(dl);
    napi_throw_error(env, NULL, "p11sign: the module has no usable C_GetFunctionList");
    return NULL;
  }
  module_t *mod = calloc(1, sizeof *mod);
  if (!mod) {
    dlclose(dl);
    napi_throw_error(env, NULL, "p11sign: out of memory");
    return NULL;
  }
  mod->dl = dl;
  mod->fl = fl;
  napi_value ext;
  if (napi_create_external(env, mod, finalize_module, NULL, &ext) != napi_ok) {
    dlclose(dl);
    free(mod);
    napi_throw_error(env, NULL, "p11sign: cannot create the module object");
    return NULL;
  }
  return ext;
}

static module_t *get_module(napi_env env, napi_value v) {
  napi_valuetype t;
  void *data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external) return NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok) return NULL;
  return data;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  module_t *mod;
  if (!get_args(env, info, 1, argv) || !(mod = get_module(env, argv[0]))) {
    return throw_type(env, "p11sign: expected (module)");
  }
  if (mod->inflight > 0) {
    napi_throw_error(env, NULL, "p11sign: cannot close the module while signatures are in flight");
    return NULL;
  }
  if (!mod->closed) {
    mod->closed = 1;
    dlclose(mod->dl);
    mod->dl = NULL;
    mod->fl = NULL;
  }
  return NULL;
}

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *job = data;
  CK_MECHANISM mech = {job->mechanism, NULL, 0};
  job->fn = "C_SignInit";
  job->rv = job->mod->fl->C_SignInit(job->session, &mech, job->key);
  if (job->rv != CKR_OK) return;
  job->fn = "C_Sign";
  job->rv = job->mod->fl->C_Sign(job->session, job->data, job->data_len, job->sig, &job->sig_len);
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *job = data;
  job->mod->inflight--;
  mark_idle(job->mod, job->session);
  napi_value result;
  if (status == napi_ok && job->rv == CKR_OK) {
    void *copy;
    napi_create_buffer_copy(env, job->sig_len, job->sig, &copy, &result);
    napi_resolve_deferred(env, job->deferred, result);
  } else {
    napi_value msg, err, rv, fn;
    const char *text = status == napi_ok ? "p11sign: PKCS#11 call failed" : "p11sign: the signature job was cancelled";
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_create_double(env, (double)(status == napi_ok ? job->rv : CKR_FUNCTION_CANCELED), &rv);
    napi_set_named_property(env, err, "rv", rv);
    napi_create_string_utf8(env, job->fn, NAPI_AUTO_LENGTH, &fn);
    napi_set_named_property(env, err, "fn", fn);
    napi_reject_deferred(env, job->deferred, err);
  }
  napi_delete_reference(env, job->module_ref);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value Sign(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (!get_args(env, info, 5, argv)) {
    return throw_type(env, "p11sign: expected (module, session, key, mechanism, data)");
  }
  module_t *mod = get_module(env, argv[0]);
  if (!mod) return throw_type(env, "p11sign: module must come from open()");
  if (mod->closed) {
    napi_throw_error(env, NULL, "p11sign: the module was closed");
    return NULL;
  }
  CK_ULONG session, key;
  if (!get_handle(env, argv[1], &session) || !get_handle(env, argv[2], &key)) {
    return throw_type(env, "p11sign: session and key must be handles (Buffers of sizeof(CK_ULONG) bytes)");
  }
  double mechanism;
  if (napi_get_value_double(env, argv[3], &mechanism) != napi_ok || !(mechanism >= 0 && mechanism <= 4294967295.0) ||
      mechanism != (double)(uint64_t)mechanism) {
    return throw_type(env, "p11sign: mechanism must be a CKM_ number");
  }
  void *data;
  size_t data_len;
  if (!get_bytes(env, argv[4], &data, &data_len) || data_len == 0 || data_len > MAX_DATA) {
    return throw_type(env, "p11sign: data must be a Uint8Array of 1 to 512 bytes");
  }
  if (session_busy(mod, session)) {
    napi_throw_error(env, NULL, "p11sign: the session already has a signature in flight");
    return NULL;
  }
  job_t *job = calloc(1, sizeof *job);
  if (!job || !mark_busy(mod, session)) {
    free(job);
    napi_throw_error(env, NULL, "p11sign: out of memory");
    return NULL;
  }
  job->mod = mod;
  job->session = session;
  job->key = key;
  job->mechanism = (CK_MECHANISM_TYPE)mechanism;
  memcpy(job->data, data, data_len);
  job->data_len = data_len;
  job->sig_len = MAX_SIG;
  job->fn = "C_SignInit";
  napi_value promise, name;
  if (napi_create_reference(env, argv[0], 1, &job->module_ref) != napi_ok ||
      napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "p11sign", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    /* Only allocation failures get here; nothing was queued. */
    mark_idle(mod, session);
    if (job->module_ref) napi_delete_reference(env, job->module_ref);
    free(job);
    napi_throw_error(env, NULL, "p11sign: cannot queue the signature");
    return NULL;
  }
  mod->inflight++;
  return promise;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, Open, NULL, NULL, NULL, napi_default, NULL},
      {"sign", NULL, Sign, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof *props, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
