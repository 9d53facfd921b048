package io.spiffe.workloadapi;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.ChannelOption;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.spiffe.exception.SocketEndpointAddressException;
import io.spiffe.workloadapi.grpc.SpiffeWorkloadAPIGrpc;
import io.spiffe.workloadapi.internal.ManagedChannelWrapper;
import io.spiffe.workloadapi.internal.SecurityHeaderInterceptor;
import io.spiffe.workloadapi.retry.ExponentialBackoffPolicy;

import java.net.URI;

/**
 * NOT part of java-spiffe: a DIAGNOSTIC variant used by the interop suite only.
 *
 * java-spiffe's own channel (io.spiffe.workloadapi.internal.GrpcManagedChannelFactory
 * in io.spiffe:grpc-netty-linux) lets grpc-java send the socket path as the
 * HTTP/2 {@code :authority}. Anchorage's agent serves the Workload API with
 * Node's HTTP/2 (nghttp2), which resets such a stream with PROTOCOL_ERROR
 * before any handler runs. To show that this is the only thing in the way,
 * this builds java-spiffe's DefaultWorkloadApiClient (through its
 * package-private constructor, hence this package) over the same channel the
 * library builds, except for {@code overrideAuthority("localhost")}. Every
 * other line that runs is java-spiffe's.
 */
public final class LocalhostAuthorityClient {

    private LocalhostAuthorityClient() {
    }

    public static WorkloadApiClient newClient(String address) throws SocketEndpointAddressException {
        URI uri = Address.parseAddress(address);
        if (!"unix".equals(uri.getScheme())) {
            throw new IllegalArgumentException("only unix:// addresses: " + address);
        }
        // As GrpcManagedChannelFactory.createNativeSocketChannel, plus the authority.
        EpollEventLoopGroup group = new EpollEventLoopGroup(0);
        ManagedChannel channel = NettyChannelBuilder.forAddress(new DomainSocketAddress(uri.getPath()))
                .eventLoopGroup(group)
                .withOption(ChannelOption.SO_KEEPALIVE, null)
                .channelType(EpollDomainSocketChannel.class)
                .usePlaintext()
                .overrideAuthority("localhost")
                .build();
        SecurityHeaderInterceptor header = new SecurityHeaderInterceptor();
        return new DefaultWorkloadApiClient(
                SpiffeWorkloadAPIGrpc.newStub(channel).withInterceptors(header),
                SpiffeWorkloadAPIGrpc.newBlockingStub(channel).withInterceptors(header),
                new ManagedChannelWrapper(channel, group),
                ExponentialBackoffPolicy.DEFAULT);
    }
}
