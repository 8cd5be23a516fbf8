using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace ResilientMail.TestServers
{
    /// <summary>One request as it arrived: enough to check JSON content, headers and signatures.</summary>
    public sealed record RecordedRequest(string Method, string Path, string Query, Dictionary<string, string> Headers, string Body, DateTimeOffset At);

    /// <summary>
    /// A scripted answer for the next matching requests: a status with headers and body, a delay before
    /// answering, or a dropped connection (abort) after reading the request.
    /// </summary>
    public sealed record Fault
    {
        public int Status { get; init; }
        public Dictionary<string, string> Headers { get; init; } = new();
        public string? Body { get; init; }
        public int DelayMs { get; init; }
        public bool Abort { get; init; }
        /// <summary>How many requests this answers (then the next fault, then normal service).</summary>
        public int Times { get; init; } = 1;
    }

    public enum Role { SendGrid, Proxy }

    /// <summary>
    /// SendGrid's POST /v3/mail/send with the real response shapes, or a proxy to an upstream (the SES
    /// emulator), both recording what arrived and answering with scripted faults first. Control:
    /// POST /_fake/faults (JSON array of Fault), GET /_fake/requests, POST /_fake/reset.
    /// </summary>
    public sealed class FakeHttpServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly ConcurrentQueue<RecordedRequest> _requests = new();
        private readonly object _faultLock = new();
        private readonly LinkedList<(Fault Fault, int Left)> _faults = new();
        private readonly HttpClient _upstream = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false });
        private readonly Role _role;
        private readonly string? _apiKey;
        private readonly Uri? _upstreamBase;
        private int _messageCounter;

        private FakeHttpServer(Role role, int port, string? apiKey, Uri? upstream)
        {
            _role = role;
            _apiKey = apiKey;
            _upstreamBase = upstream;
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port));
            _app = builder.Build();
            _app.Run(HandleAsync);
        }

        public Uri BaseUri { get; private set; } = new Uri("http://127.0.0.1/");
        public IReadOnlyList<RecordedRequest> Requests => _requests.ToArray();

        public static async Task<FakeHttpServer> StartAsync(Role role, int port = 0, string? apiKey = null, Uri? upstream = null)
        {
            var server = new FakeHttpServer(role, port, apiKey, upstream);
            await server._app.StartAsync().ConfigureAwait(false);
            var address = server._app.Urls.First();
            server.BaseUri = new Uri(address.Replace("[::]", "127.0.0.1").Replace("localhost", "127.0.0.1"));
            return server;
        }

        public void AddFaults(params Fault[] faults)
        {
            lock (_faultLock) foreach (var f in faults) _faults.AddLast((f, f.Times));
        }

        public void Reset()
        {
            lock (_faultLock) _faults.Clear();
            while (_requests.TryDequeue(out _)) { }
        }

        private Fault? NextFault()
        {
            lock (_faultLock)
            {
                var node = _faults.First;
                if (node == null) return null;
                var (fault, left) = node.Value;
                if (left <= 1) _faults.RemoveFirst(); else node.Value = (fault, left - 1);
                return fault;
            }
        }

        private async Task HandleAsync(HttpContext context)
        {
            var request = context.Request;
            if (request.Path.StartsWithSegments("/_fake"))
            {
                await ControlAsync(context).ConfigureAwait(false);
                return;
            }
            string body;
            using (var reader = new StreamReader(request.Body, Encoding.UTF8)) body = await reader.ReadToEndAsync().ConfigureAwait(false);
            var headers = request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            _requests.Enqueue(new RecordedRequest(request.Method, request.Path.Value ?? "", request.QueryString.Value ?? "", headers, body, DateTimeOffset.UtcNow));

            var fault = NextFault();
            if (fault != null)
            {
                if (fault.DelayMs > 0)
                {
                    try { await Task.Delay(fault.DelayMs, context.RequestAborted).ConfigureAwait(false); }
                    catch (OperationCanceledException) { return; }
                }
                if (fault.Abort)
                {
                    context.Abort();
                    return;
                }
                if (fault.Status != 0)
                {
                    context.Response.StatusCode = fault.Status;
                    foreach (var h in fault.Headers) context.Response.Headers[h.Key] = h.Value;
                    if (fault.Body != null)
                    {
                        if (!fault.Headers.ContainsKey("Content-Type")) context.Response.ContentType = "application/json";
                        await context.Response.WriteAsync(fault.Body).ConfigureAwait(false);
                    }
                    return;
                }
                // A pure delay: then answer normally.
            }

            if (_role == Role.Proxy) await ForwardAsync(context, headers, body).ConfigureAwait(false);
            else await SendGridAsync(context, headers, body).ConfigureAwait(false);
        }

        private async Task ForwardAsync(HttpContext context, Dictionary<string, string> headers, string body)
        {
            var target = new Uri(_upstreamBase!, context.Request.Path.Value + context.Request.QueryString.Value);
            using var forward = new HttpRequestMessage(new HttpMethod(context.Request.Method), target);
            if (body.Length > 0 || context.Request.ContentLength > 0)
            {
                forward.Content = new StringContent(body, Encoding.UTF8);
                forward.Content.Headers.Remove("Content-Type");
                if (headers.TryGetValue("Content-Type", out var ct)) forward.Content.Headers.TryAddWithoutValidation("Content-Type", ct);
            }
            foreach (var h in headers)
            {
                if (h.Key.Equals("Host", StringComparison.OrdinalIgnoreCase) || h.Key.StartsWith("Content-", StringComparison.OrdinalIgnoreCase)) continue;
                forward.Headers.TryAddWithoutValidation(h.Key, h.Value);
            }
            using var response = await _upstream.SendAsync(forward, context.RequestAborted).ConfigureAwait(false);
            context.Response.StatusCode = (int)response.StatusCode;
            foreach (var h in response.Headers.Concat(response.Content.Headers))
            {
                if (h.Key.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) || h.Key.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) continue;
                context.Response.Headers[h.Key] = h.Value.ToArray();
            }
            await response.Content.CopyToAsync(context.Response.Body).ConfigureAwait(false);
        }

        private async Task SendGridAsync(HttpContext context, Dictionary<string, string> headers, string body)
        {
            var response = context.Response;
            if (context.Request.Method != "POST" || context.Request.Path.Value != "/v3/mail/send")
            {
                response.StatusCode = 404;
                await response.WriteAsync("{\"errors\":[{\"field\":null,\"message\":\"resource not found\"}]}").ConfigureAwait(false);
                return;
            }
            if (!headers.TryGetValue("Authorization", out var auth) || _apiKey != null && auth != "Bearer " + _apiKey)
            {
                response.StatusCode = 401;
                response.ContentType = "application/json";
                await response.WriteAsync("{\"errors\":[{\"field\":null,\"message\":\"The provided authorization grant is invalid, expired, or revoked\",\"help\":null}]}").ConfigureAwait(false);
                return;
            }
            var problems = Validate(body);
            if (problems.Count > 0)
            {
                response.StatusCode = 400;
                response.ContentType = "application/json";
                var errors = problems.Select(p => new Dictionary<string, string?> { ["message"] = p.Message, ["field"] = p.Field, ["help"] = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html" });
                await response.WriteAsync(JsonSerializer.Serialize(new { errors })).ConfigureAwait(false);
                return;
            }
            response.StatusCode = 202;
            response.Headers["X-Message-Id"] = $"fake{Interlocked.Increment(ref _messageCounter):D6}sg";
        }

        /// <summary>The checks SendGrid makes that a mapping bug would trip.</summary>
        private static List<(string? Field, string Message)> Validate(string body)
        {
            var problems = new List<(string?, string)>();
            JsonDocument doc;
            try { doc = JsonDocument.Parse(body); }
            catch (JsonException) { problems.Add((null, "Bad Request")); return problems; }
            using (doc)
            {
                var root = doc.RootElement;
                if (!root.TryGetProperty("from", out var from) || !from.TryGetProperty("email", out var fe) || !(fe.GetString() ?? "").Contains('@'))
                    problems.Add(("from.email", "The from email does not contain a valid address."));
                if (!root.TryGetProperty("personalizations", out var ps) || ps.ValueKind != JsonValueKind.Array || ps.GetArrayLength() == 0)
                    problems.Add(("personalizations", "The personalizations field is required and must have at least one personalization."));
                else
                {
                    int i = 0;
                    foreach (var p in ps.EnumerateArray())
                    {
                        if (!p.TryGetProperty("to", out var to) || to.GetArrayLength() == 0)
                            problems.Add(($"personalizations.{i}.to", "The to array is required for all personalization objects, and must have at least one email object with a valid email address."));
                        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
                        foreach (var kind in new[] { "to", "cc", "bcc" })
                            if (p.TryGetProperty(kind, out var list))
                                foreach (var a in list.EnumerateArray())
                                    if (!seen.Add(a.GetProperty("email").GetString() ?? ""))
                                        problems.Add(($"personalizations.{i}", "Each email address in the personalization block should be unique between to, cc, and bcc."));
                        i++;
                    }
                }
                if (!root.TryGetProperty("subject", out var subject) || string.IsNullOrEmpty(subject.GetString()))
                    problems.Add(("subject", "The subject is required."));
                if (!root.TryGetProperty("content", out var content) || content.GetArrayLength() == 0)
                    problems.Add(("content", "Unless a valid template_id is provided, the content parameter is required."));
                else
                {
                    var types = content.EnumerateArray().Select(c => c.GetProperty("type").GetString()).ToList();
                    if (types.Contains("text/html") && types.Contains("text/plain") && types.IndexOf("text/plain") > types.IndexOf("text/html"))
                        problems.Add(("content", "If present, text/plain content must be first, followed by text/html."));
                    foreach (var c in content.EnumerateArray())
                        if (string.IsNullOrEmpty(c.GetProperty("value").GetString()))
                            problems.Add(("content.value", "The content value must be a string at least one character in length."));
                }
            }
            return problems;
        }

        private async Task ControlAsync(HttpContext context)
        {
            var path = context.Request.Path.Value;
            if (path == "/_fake/requests")
            {
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(JsonSerializer.Serialize(Requests)).ConfigureAwait(false);
            }
            else if (path == "/_fake/faults" && context.Request.Method == "POST")
            {
                var faults = await JsonSerializer.DeserializeAsync<Fault[]>(context.Request.Body, new JsonSerializerOptions { PropertyNameCaseInsensitive = true }).ConfigureAwait(false);
                AddFaults(faults ?? Array.Empty<Fault>());
                context.Response.StatusCode = 204;
            }
            else if (path == "/_fake/reset" && context.Request.Method == "POST")
            {
                Reset();
                context.Response.StatusCode = 204;
            }
            else
            {
                context.Response.StatusCode = 404;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync().ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
            _upstream.Dispose();
        }
    }
}
