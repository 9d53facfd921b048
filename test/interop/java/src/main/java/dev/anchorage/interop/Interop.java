package dev.anchorage.interop;

import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.stub.MetadataUtils;
import io.spiffe.bundle.jwtbundle.JwtBundle;
import io.spiffe.bundle.jwtbundle.JwtBundleSet;
import io.spiffe.bundle.x509bundle.X509Bundle;
import io.spiffe.bundle.x509bundle.X509BundleSet;
import io.spiffe.spiffeid.SpiffeId;
import io.spiffe.spiffeid.TrustDomain;
import io.spiffe.svid.jwtsvid.JwtSvid;
import io.spiffe.svid.x509svid.X509Svid;
import io.spiffe.svid.x509svid.X509SvidValidator;
import io.spiffe.workloadapi.DefaultJwtSource;
import io.spiffe.workloadapi.DefaultWorkloadApiClient;
import io.spiffe.workloadapi.DefaultX509Source;
import io.spiffe.workloadapi.JwtSource;
import io.spiffe.workloadapi.JwtSourceOptions;
import io.spiffe.workloadapi.LocalhostAuthorityClient;
import io.spiffe.workloadapi.WorkloadApiClient;
import io.spiffe.workloadapi.X509Context;
import io.spiffe.workloadapi.X509Source;
import io.spiffe.workloadapi.grpc.SpiffeWorkloadAPIGrpc;
import io.spiffe.workloadapi.grpc.Workload;

import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.cert.CertificateEncodingException;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

/**
 * A SPIFFE workload written with java-spiffe: it gets its identity from a
 * Workload API the way Java workloads do (DefaultX509Source, DefaultJwtSource,
 * DefaultWorkloadApiClient), checks what it got with the library's own
 * validators, and prints one JSON line on stdout describing everything, for
 * test/interop/java-spiffe.test.ts to compare with what the agent serves.
 *
 * <pre>
 * java -jar java-spiffe-interop.jar identity  --socket unix:///path --expect-id spiffe://td/x --audience aud [--channel C]
 * java -jar java-spiffe-interop.jar denied    --socket unix:///path --audience aud [--channel C]
 * java -jar java-spiffe-interop.jar no-header --socket unix:///path --audience aud [--channel C]
 * </pre>
 *
 * The channel C:
 * <ul>
 *   <li>{@code library} (default): java-spiffe as shipped; its sources and client open their own
 *       channel from the socket address (grpc-java then sends the socket path as {@code :authority}).</li>
 *   <li>{@code authority-localhost}: a diagnostic; the same java-spiffe client and sources over a
 *       channel that sends {@code :authority: localhost} ({@link LocalhostAuthorityClient}).</li>
 * </ul>
 *
 * Modes:
 * <ul>
 *   <li>identity: the caller has an entry; X.509 and JWT SVIDs, bundles, local and remote JWT validation.</li>
 *   <li>denied: the caller has no entry; how the library reports each refused call.</li>
 *   <li>no-header: raw grpc-java calls with the stubs java-spiffe ships, without (and, as a control, with)
 *       the {@code workload.spiffe.io: true} metadata.</li>
 * </ul>
 * The line has {@code "ok": true} and the exit code is 0 when every step ran
 * (expected refusals are reported, not failures); otherwise {@code "ok": false},
 * the step and the error, exit code 1.
 */
public final class Interop {

    private static final String SECURITY_HEADER = "workload.spiffe.io";
    private static final Duration INIT_TIMEOUT = Duration.ofSeconds(10);
    /** How long the sources may wait for a first answer when the caller has no identity. */
    private static final Duration DENIED_INIT_TIMEOUT = Duration.ofSeconds(2);

    /** Loggers are held weakly by java.util.logging: keep the one we listen to. */
    private static final Logger STREAM_OBSERVERS_LOG = Logger.getLogger("io.spiffe.workloadapi.StreamObservers");

    private final Map<String, Object> out = new LinkedHashMap<>();
    private String step = "setup";
    private String socket;
    /** True for the authority-localhost channel. */
    private boolean localhostAuthority;

    private Interop() {
    }

    public static void main(String[] args) {
        Interop p = new Interop();
        int code = p.run(args);
        System.out.println(Json.write(p.out));
        System.out.flush();
        // gRPC and netty leave non-daemon threads behind closed clients for a moment; do not wait for them.
        System.exit(code);
    }

    private int run(String[] args) {
        try {
            if (args.length == 0) throw new IllegalArgumentException("usage: identity|denied|no-header --socket unix:///path --audience AUD [--expect-id ID] [--channel library|authority-localhost]");
            String mode = args[0];
            Map<String, String> flags = parseFlags(args);
            out.put("mode", mode);
            Properties versions = versions();
            out.put("java_spiffe_version", versions.getProperty("java-spiffe.version"));
            out.put("grpc_version", versions.getProperty("grpc.version"));
            out.put("java_version", System.getProperty("java.version"));
            out.put("user", System.getProperty("user.name"));
            socket = required(flags, "socket");
            String audience = required(flags, "audience");
            String channel = flags.containsKey("channel") ? flags.get("channel") : "library";
            if (!channel.equals("library") && !channel.equals("authority-localhost")) throw new IllegalArgumentException("unknown channel " + channel);
            localhostAuthority = channel.equals("authority-localhost");
            out.put("channel", channel);
            switch (mode) {
                case "identity":
                    identity(SpiffeId.parse(required(flags, "expect-id")), audience);
                    break;
                case "denied":
                    denied(audience);
                    break;
                case "no-header":
                    noHeader(audience);
                    break;
                default:
                    throw new IllegalArgumentException("unknown mode " + mode);
            }
            out.put("ok", true);
            return 0;
        } catch (Throwable t) {
            out.put("ok", false);
            out.put("step", step);
            out.put("error", describe(t));
            System.err.println("interop: FAILED at " + step + ": " + t);
            t.printStackTrace(System.err);
            return 1;
        }
    }

    // --- the library's entry points, per channel ---------------------------------------

    private WorkloadApiClient newClient() throws Exception {
        if (localhostAuthority) return LocalhostAuthorityClient.newClient(socket);
        return DefaultWorkloadApiClient.newClient(DefaultWorkloadApiClient.ClientOptions.builder()
                .spiffeSocketPath(socket)
                .build());
    }

    private X509Source newX509Source(Duration initTimeout) throws Exception {
        DefaultX509Source.X509SourceOptions.Builder b = DefaultX509Source.X509SourceOptions.builder().initTimeout(initTimeout);
        if (localhostAuthority) b.workloadApiClient(LocalhostAuthorityClient.newClient(socket));
        else b.spiffeSocketPath(socket);
        return DefaultX509Source.newSource(b.build());
    }

    private JwtSource newJwtSource(Duration initTimeout) throws Exception {
        JwtSourceOptions.Builder b = JwtSourceOptions.builder().initTimeout(initTimeout);
        if (localhostAuthority) b.workloadApiClient(LocalhostAuthorityClient.newClient(socket));
        else b.spiffeSocketPath(socket);
        return DefaultJwtSource.newSource(b.build());
    }

    // --- identity --------------------------------------------------------------------

    private void identity(SpiffeId want, String audience) throws Exception {
        TrustDomain td = want.getTrustDomain();

        // The X.509 source, as a Java workload would hold it.
        step = "x509_source";
        List<X509Certificate> chain;
        try (X509Source source = newX509Source(INIT_TIMEOUT)) {
            X509Svid svid = source.getX509Svid();
            chain = svid.getChain();
            out.put("spiffe_id", svid.getSpiffeId().toString());
            out.put("hint", svid.getHint());
            out.put("chain", derList(chain));
            out.put("leaf_not_after", svid.getLeaf().getNotAfter().getTime() / 1000);
            PrivateKey key = svid.getPrivateKey();
            out.put("private_key_algorithm", key.getAlgorithm());
            out.put("private_key_pkcs8", b64(key.getEncoded()));

            step = "x509_source_verify_chain";
            X509SvidValidator.verifyChain(chain, source);
            out.put("chain_verified_by_x509_source", true);

            step = "x509_source_verify_spiffe_id";
            X509SvidValidator.verifySpiffeId(svid.getLeaf(), () -> Collections.singleton(want));
            out.put("spiffe_id_accepted", true);
            // Control: the same leaf against a set without its ID must be refused.
            SpiffeId other = SpiffeId.fromSegments(td, "someone", "else");
            try {
                X509SvidValidator.verifySpiffeId(svid.getLeaf(), () -> Collections.singleton(other));
                out.put("other_spiffe_id_rejected", false);
            } catch (CertificateException e) {
                out.put("other_spiffe_id_rejected", true);
            }

            step = "x509_source_key_matches_leaf";
            out.put("private_key_matches_leaf", keyMatches(key, svid.getLeaf().getPublicKey()));

            step = "x509_source_bundle";
            out.put("x509_source_bundle", authorities(source.getBundleForTrustDomain(td)));
        }

        step = "workload_api_client";
        try (WorkloadApiClient client = newClient()) {
            step = "fetch_x509_context";
            X509Context context = client.fetchX509Context();
            List<Object> ids = new ArrayList<>();
            for (X509Svid s : context.getX509Svids()) ids.add(s.getSpiffeId().toString());
            out.put("x509_context_spiffe_ids", ids);
            out.put("x509_context_bundles", x509BundleSet(context.getX509BundleSet()));

            step = "fetch_x509_bundles";
            X509BundleSet x509Bundles = client.fetchX509Bundles();
            out.put("x509_bundles", x509BundleSet(x509Bundles));
            step = "fetch_x509_bundles_verify_chain";
            X509SvidValidator.verifyChain(chain, x509Bundles);
            out.put("chain_verified_by_x509_bundles", true);

            step = "fetch_jwt_bundles";
            JwtBundleSet jwtBundles = client.fetchJwtBundles();
            out.put("jwt_bundles", jwtBundleSet(jwtBundles));

            step = "jwt_source";
            String token;
            try (JwtSource jwtSource = newJwtSource(INIT_TIMEOUT)) {
                step = "fetch_jwt_svid";
                JwtSvid jwt = jwtSource.fetchJwtSvid(audience);
                token = jwt.marshal();
                Map<String, Object> j = new LinkedHashMap<>();
                j.put("token", token);
                j.put("spiffe_id", jwt.getSpiffeId().toString());
                j.put("audience", sorted(jwt.getAudience()));
                j.put("expiry", jwt.getExpiry().getTime() / 1000);
                j.put("issued_at", jwt.getIssuedAt() == null ? null : jwt.getIssuedAt().getTime() / 1000);
                j.put("hint", jwt.getHint());
                out.put("jwt", j);

                step = "jwt_source_bundle";
                out.put("jwt_source_bundle", jwtAuthorities(jwtSource.getBundleForTrustDomain(td)));

                step = "validate_jwt_svid_with_jwt_source";
                out.put("jwt_validated_by_jwt_source", JwtSvid.parseAndValidate(token, jwtSource, Collections.singleton(audience)).getSpiffeId().toString());
            }

            step = "validate_jwt_svid_locally";
            JwtSvid local = JwtSvid.parseAndValidate(token, jwtBundles, Collections.singleton(audience));
            out.put("jwt_validated_locally", local.getSpiffeId().toString());
            out.put("jwt_validated_locally_audience", sorted(local.getAudience()));
            out.put("jwt_local_wrong_audience", attempt(() -> JwtSvid.parseAndValidate(token, jwtBundles, Collections.singleton(audience + "-other")).getSpiffeId().toString()));

            step = "validate_jwt_svid_workload_api";
            JwtSvid remote = client.validateJwtSvid(token, audience);
            out.put("jwt_validated_by_workload_api", remote.getSpiffeId().toString());
            out.put("jwt_workload_api_wrong_audience", attempt(() -> client.validateJwtSvid(token, audience + "-other").getSpiffeId().toString()));
        }
    }

    // --- denied ----------------------------------------------------------------------

    private void denied(String audience) throws Exception {
        step = "workload_api_client";
        try (WorkloadApiClient client = newClient()) {
            step = "denied_client_calls";
            out.put("fetch_x509_context", attempt(() -> client.fetchX509Context().getDefaultSvid().getSpiffeId().toString()));
            out.put("fetch_x509_bundles", attempt(() -> String.valueOf(client.fetchX509Bundles().getBundles().keySet())));
            out.put("fetch_jwt_svid", attempt(() -> client.fetchJwtSvid(audience).getSpiffeId().toString()));
            out.put("fetch_jwt_bundles", attempt(() -> String.valueOf(client.fetchJwtBundles().getBundles().keySet())));
            // Not a token anyone issued; the call must be refused before the token is looked at.
            out.put("validate_jwt_svid", attempt(() -> client.validateJwtSvid("e30.e30.c2ln", audience).getSpiffeId().toString()));
        }

        // The sources retry a refused watch (only INVALID_ARGUMENT ends it), so they report a
        // timeout; the status they were refused with is only in what they log. Collect that.
        step = "denied_sources";
        List<String> watchErrors = new CopyOnWriteArrayList<>();
        Handler collect = new Handler() {
            @Override
            public void publish(LogRecord record) {
                if (record.getLevel().intValue() >= Level.SEVERE.intValue() && record.getThrown() != null) {
                    watchErrors.add(String.valueOf(grpcStatus(record.getThrown()).get("grpc_code")));
                }
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        STREAM_OBSERVERS_LOG.addHandler(collect);
        try {
            out.put("x509_source", attempt(() -> {
                try (X509Source s = newX509Source(DENIED_INIT_TIMEOUT)) {
                    return s.getX509Svid().getSpiffeId().toString();
                }
            }));
            out.put("x509_source_watch_errors", new ArrayList<Object>(watchErrors));
            watchErrors.clear();
            out.put("jwt_source", attempt(() -> {
                try (JwtSource s = newJwtSource(DENIED_INIT_TIMEOUT)) {
                    return s.fetchJwtSvid(audience).getSpiffeId().toString();
                }
            }));
            out.put("jwt_source_watch_errors", new ArrayList<Object>(watchErrors));
        } finally {
            STREAM_OBSERVERS_LOG.removeHandler(collect);
        }
    }

    // --- no-header -------------------------------------------------------------------

    private void noHeader(String audience) throws Exception {
        step = "raw_channel";
        URI uri = URI.create(socket);
        if (!"unix".equals(uri.getScheme())) throw new IllegalArgumentException("--socket must be unix:///path, got " + socket);
        EpollEventLoopGroup group = new EpollEventLoopGroup(1);
        NettyChannelBuilder builder = NettyChannelBuilder.forAddress(new DomainSocketAddress(uri.getPath()))
                .eventLoopGroup(group)
                // As java-spiffe does: a Unix socket has no SO_KEEPALIVE (netty would warn).
                .withOption(ChannelOption.SO_KEEPALIVE, null)
                .channelType(EpollDomainSocketChannel.class)
                .usePlaintext();
        if (localhostAuthority) builder.overrideAuthority("localhost");
        ManagedChannel channel = builder.build();
        out.put("authority", channel.authority());
        try {
            SpiffeWorkloadAPIGrpc.SpiffeWorkloadAPIBlockingStub bare = SpiffeWorkloadAPIGrpc.newBlockingStub(channel);

            step = "raw_calls";
            out.put("fetch_x509_svid_no_header", attempt(() -> firstX509Svid(bare)));
            out.put("fetch_jwt_svid_no_header", attempt(() -> bare.withDeadlineAfter(10, TimeUnit.SECONDS)
                    .fetchJWTSVID(Workload.JWTSVIDRequest.newBuilder().addAudience(audience).build())
                    .getSvids(0).getSpiffeId()));
            out.put("fetch_x509_svid_header_false", attempt(() -> firstX509Svid(withHeader(bare, "false"))));
            // Control: the same channel and stub, with the header, is served.
            out.put("fetch_x509_svid_with_header", attempt(() -> firstX509Svid(withHeader(bare, "true"))));
        } finally {
            channel.shutdownNow();
            channel.awaitTermination(5, TimeUnit.SECONDS);
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        }
    }

    private static SpiffeWorkloadAPIGrpc.SpiffeWorkloadAPIBlockingStub withHeader(SpiffeWorkloadAPIGrpc.SpiffeWorkloadAPIBlockingStub stub, String value) {
        Metadata md = new Metadata();
        md.put(Metadata.Key.of(SECURITY_HEADER, Metadata.ASCII_STRING_MARSHALLER), value);
        return stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(md));
    }

    /** The SPIFFE ID of the first SVID of the first FetchX509SVID answer; the stream is cancelled after it. */
    private static String firstX509Svid(SpiffeWorkloadAPIGrpc.SpiffeWorkloadAPIBlockingStub stub) throws Exception {
        Context.CancellableContext ctx = Context.current().withCancellation();
        try {
            return ctx.call(() -> {
                Iterator<Workload.X509SVIDResponse> it = stub.withDeadlineAfter(10, TimeUnit.SECONDS)
                        .fetchX509SVID(Workload.X509SVIDRequest.getDefaultInstance());
                Workload.X509SVIDResponse first = it.next();
                return first.getSvidsCount() == 0 ? "" : first.getSvids(0).getSpiffeId();
            });
        } finally {
            ctx.cancel(null);
        }
    }

    // --- helpers ---------------------------------------------------------------------

    interface Call {
        String call() throws Exception;
    }

    /** {"returned": value} when the call succeeds, else a description of how it failed. */
    private static Map<String, Object> attempt(Call c) {
        Map<String, Object> r = new LinkedHashMap<>();
        try {
            r.put("returned", c.call());
        } catch (Throwable t) {
            r.putAll(describe(t));
        }
        return r;
    }

    /** The exception, its causes, and the gRPC status found among them (if any). */
    private static Map<String, Object> describe(Throwable t) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("exception", t.getClass().getName());
        r.put("message", t.getMessage());
        List<Object> causes = new ArrayList<>();
        for (Throwable c = t.getCause(); c != null && causes.size() < 10; c = c.getCause()) {
            causes.add(c.getClass().getName() + ": " + c.getMessage());
        }
        r.put("causes", causes);
        r.putAll(grpcStatus(t));
        return r;
    }

    private static Map<String, Object> grpcStatus(Throwable t) {
        Map<String, Object> r = new LinkedHashMap<>();
        for (Throwable c = t; c != null; c = c.getCause()) {
            Status s = null;
            if (c instanceof StatusRuntimeException) s = ((StatusRuntimeException) c).getStatus();
            if (c instanceof StatusException) s = ((StatusException) c).getStatus();
            if (s != null) {
                r.put("grpc_code", s.getCode().name());
                r.put("grpc_description", s.getDescription());
                break;
            }
        }
        return r;
    }

    /** Signs with the SVID's private key and verifies with the leaf's public key. */
    private static boolean keyMatches(PrivateKey key, PublicKey leafKey) throws Exception {
        String alg;
        switch (key.getAlgorithm()) {
            case "EC":
                alg = "SHA256withECDSA";
                break;
            case "RSA":
                alg = "SHA256withRSA";
                break;
            default:
                throw new IllegalStateException("unexpected private key algorithm " + key.getAlgorithm());
        }
        byte[] data = "anchorage java-spiffe interop".getBytes(StandardCharsets.UTF_8);
        Signature signer = Signature.getInstance(alg);
        signer.initSign(key);
        signer.update(data);
        byte[] sig = signer.sign();
        Signature verifier = Signature.getInstance(alg);
        verifier.initVerify(leafKey);
        verifier.update(data);
        return verifier.verify(sig);
    }

    private static Map<String, Object> x509BundleSet(X509BundleSet set) throws CertificateEncodingException {
        Map<String, Object> r = new TreeMap<>();
        for (Map.Entry<TrustDomain, X509Bundle> e : set.getBundles().entrySet()) {
            r.put(e.getKey().getName(), authorities(e.getValue()));
        }
        return r;
    }

    /** Base64 DER of the authorities, sorted (a bundle is a set). */
    private static List<Object> authorities(X509Bundle bundle) throws CertificateEncodingException {
        List<String> ders = new ArrayList<>();
        for (X509Certificate c : bundle.getX509Authorities()) ders.add(b64(c.getEncoded()));
        Collections.sort(ders);
        return new ArrayList<Object>(ders);
    }

    private static Map<String, Object> jwtBundleSet(JwtBundleSet set) {
        Map<String, Object> r = new TreeMap<>();
        for (Map.Entry<TrustDomain, JwtBundle> e : set.getBundles().entrySet()) {
            r.put(e.getKey().getName(), jwtAuthorities(e.getValue()));
        }
        return r;
    }

    /** Key ID to base64 DER SubjectPublicKeyInfo. */
    private static Map<String, Object> jwtAuthorities(JwtBundle bundle) {
        Map<String, Object> r = new TreeMap<>();
        for (Map.Entry<String, PublicKey> e : bundle.getJwtAuthorities().entrySet()) {
            r.put(e.getKey(), b64(e.getValue().getEncoded()));
        }
        return r;
    }

    private static List<Object> derList(List<X509Certificate> certs) throws CertificateEncodingException {
        List<Object> r = new ArrayList<>();
        for (X509Certificate c : certs) r.add(b64(c.getEncoded()));
        return r;
    }

    private static List<Object> sorted(Collection<String> values) {
        List<String> l = new ArrayList<>(values);
        Collections.sort(l);
        return new ArrayList<Object>(l);
    }

    private static String b64(byte[] b) {
        return Base64.getEncoder().encodeToString(b);
    }

    private static Properties versions() throws Exception {
        Properties p = new Properties();
        try (InputStream in = Interop.class.getResourceAsStream("versions.properties")) {
            if (in == null) throw new IllegalStateException("versions.properties is missing from the jar");
            p.load(in);
        }
        return p;
    }

    private static Map<String, String> parseFlags(String[] args) {
        Map<String, String> flags = new LinkedHashMap<>();
        for (int i = 1; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--") || i + 1 >= args.length) throw new IllegalArgumentException("bad argument " + a);
            flags.put(a.substring(2), args[++i]);
        }
        return flags;
    }

    private static String required(Map<String, String> flags, String name) {
        String v = flags.get(name);
        if (v == null || v.isEmpty()) throw new IllegalArgumentException("--" + name + " is required");
        return v;
    }

    /** Just enough JSON for the result line: maps, lists, strings, numbers, booleans, null. */
    static final class Json {
        private Json() {
        }

        static String write(Object v) {
            StringBuilder sb = new StringBuilder();
            write(sb, v);
            return sb.toString();
        }

        private static void write(StringBuilder sb, Object v) {
            if (v == null) {
                sb.append("null");
            } else if (v instanceof String) {
                string(sb, (String) v);
            } else if (v instanceof Number || v instanceof Boolean) {
                sb.append(v);
            } else if (v instanceof Map) {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                    if (!first) sb.append(',');
                    first = false;
                    string(sb, String.valueOf(e.getKey()));
                    sb.append(':');
                    write(sb, e.getValue());
                }
                sb.append('}');
            } else if (v instanceof Collection) {
                sb.append('[');
                boolean first = true;
                for (Object o : (Collection<?>) v) {
                    if (!first) sb.append(',');
                    first = false;
                    write(sb, o);
                }
                sb.append(']');
            } else {
                string(sb, v.toString());
            }
        }

        private static void string(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"':
                        sb.append("\\\"");
                        break;
                    case '\\':
                        sb.append("\\\\");
                        break;
                    case '\n':
                        sb.append("\\n");
                        break;
                    case '\r':
                        sb.append("\\r");
                        break;
                    case '\t':
                        sb.append("\\t");
                        break;
                    default:
                        if (c < 0x20) {
                            sb.append(String.format("\\u%04x", (int) c));
                        } else {
                            sb.append(c);
                        }
                }
            }
            sb.append('"');
        }
    }
}
