using System;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Resilience
{
    /// <summary>The answer to "can I open a TCP connection to this host:port now?"</summary>
    public sealed record ProbeResult(Endpoint Target, bool Reachable, TimeSpan Latency, string? Error);

    public interface IConnectivityProbe
    {
        Task<ProbeResult> ProbeAsync(Endpoint target, TimeSpan timeout, CancellationToken cancellationToken);
    }

    /// <summary>Opens and closes a TCP connection. Sends nothing, so it is harmless to any server.</summary>
    public sealed class TcpProbe : IConnectivityProbe
    {
        private readonly TimeProvider _time;

        public TcpProbe() : this(TimeProvider.System) { }

        public TcpProbe(TimeProvider time) => _time = time ?? TimeProvider.System;

        public async Task<ProbeResult> ProbeAsync(Endpoint target, TimeSpan timeout, CancellationToken cancellationToken)
        {
            long started = _time.GetTimestamp();
            using var timer = _time.CreateCancellationTokenSource(timeout);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timer.Token);
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            // netstandard2.0's ConnectAsync takes no token: closing the socket is how it is cancelled.
            using var registration = deadline.Token.Register(() => socket.Dispose());
            try
            {
                await socket.ConnectAsync(target.Host, target.Port).ConfigureAwait(false);
                return new ProbeResult(target, true, _time.GetElapsedTime(started), null);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                var error = deadline.IsCancellationRequested
                    ? $"No answer within {timeout.TotalSeconds:0.#} s."
                    : ex is SocketException s ? $"{s.Message} ({s.SocketErrorCode})" : ex.Message;
                return new ProbeResult(target, false, _time.GetElapsedTime(started), error);
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException(cancellationToken);
            }
            finally
            {
                socket.Dispose();
            }
        }
    }
}
