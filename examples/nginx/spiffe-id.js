// The SPIFFE ID of an nginx client, for authorization by SPIFFE ID in nginx
// (njs, Debian package libnginx-mod-http-js). nginx verifies the client's
// chain itself (ssl_verify_client on, ssl_client_certificate = the helper's
// bundle.pem) but has no variable holding a certificate's URI SAN; this
// module reads it from $ssl_client_raw_cert:
//
//   load_module modules/ngx_http_js_module.so;
//   js_import spiffe from /etc/nginx/spiffe-id.js;
//   js_set $ssl_client_spiffe_id spiffe.clientId;
//   map $ssl_client_spiffe_id $client_allowed { "spiffe://example.org/frontend" 1; default 0; }
//   ... location / { if ($client_allowed = 0) { return 403; } ... }
//
// The value is the empty string unless the client sent a certificate that
// nginx verified and that holds exactly one URI SAN, a spiffe:// one, as an
// X509-SVID must. Only verified certificates count: an unverified one (e.g.
// with ssl_verify_client optional) names whatever its maker wrote.

/** One DER TLV at `pos`: its tag, where its contents start and end. */
function tlv(der, pos, end) {
  if (pos + 2 > end) throw new Error('truncated');
  var tag = der[pos];
  var len = der[pos + 1];
  var start = pos + 2;
  if (len & 0x80) {
    var n = len & 0x7f;
    if (n < 1 || n > 3 || start + n > end) throw new Error('bad length');
    len = 0;
    for (var i = 0; i < n; i++) len = len * 256 + der[start + i];
    start += n;
  }
  if (start + len > end) throw new Error('truncated');
  return { tag: tag, start: start, end: start + len };
}

/** The children of a constructed TLV. */
function children(der, node) {
  var out = [];
  for (var pos = node.start; pos < node.end; ) {
    var child = tlv(der, pos, node.end);
    out.push(child);
    pos = child.end;
  }
  return out;
}

// OID 2.5.29.17 (subjectAltName), DER contents.
var SAN_OID = '551d11';

function hex(der, node) {
  var s = '';
  for (var i = node.start; i < node.end; i++) s += (der[i] < 16 ? '0' : '') + der[i].toString(16);
  return s;
}

/** IA5String contents as text (byte by byte: njs's Buffer has no latin1 decoder). */
function ascii(der, node) {
  var s = '';
  for (var i = node.start; i < node.end; i++) s += String.fromCharCode(der[i]);
  return s;
}

/** The URI SANs of a DER certificate. */
function uriSans(der) {
  var cert = tlv(der, 0, der.length);
  var tbs = children(der, cert)[0];
  var uris = [];
  children(der, tbs).forEach(function (field) {
    // [3] EXPLICIT Extensions
    if (field.tag !== 0xa3) return;
    children(der, children(der, field)[0]).forEach(function (ext) {
      var parts = children(der, ext);
      if (parts[0].tag !== 0x06 || hex(der, parts[0]) !== SAN_OID) return;
      var value = parts[parts.length - 1];
      children(der, children(der, value)[0]).forEach(function (name) {
        // [6] IMPLICIT IA5String: uniformResourceIdentifier
        if (name.tag === 0x86) uris.push(ascii(der, name));
      });
    });
  });
  return uris;
}

function clientId(r) {
  if (r.variables.ssl_client_verify !== 'SUCCESS') return '';
  var pem = r.variables.ssl_client_raw_cert || '';
  var b64 = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
  try {
    var uris = uriSans(Buffer.from(b64, 'base64'));
    return uris.length === 1 && uris[0].indexOf('spiffe://') === 0 ? uris[0] : '';
  } catch (e) {
    return '';
  }
}

export default { clientId };
