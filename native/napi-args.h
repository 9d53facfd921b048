/*
 * Argument helpers shared by the addons in native/ (each includes this file;
 * the functions are static, so every addon has its own copy in its binary).
 */
#ifndef ANCHORAGE_NAPI_ARGS_H
#define ANCHORAGE_NAPI_ARGS_H
#include <node_api.h>

/* Throws a TypeError with msg; returns NULL for the caller to return. */
static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* The bytes of a Uint8Array (a Buffer is one); 0 for anything else. */
static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &offset) != napi_ok) return 0;
  return type == napi_uint8_array;
}

/* Exactly n arguments into argv; 0 when there are more or fewer. */
static int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  size_t argc = n;
  return napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == n;
}

#endif
