using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MimeKit;

namespace ResilientMail.TestServers
{
    /// <summary>
    /// Stand-ins for Microsoft Entra's token endpoint (client credentials with a secret or a signed client assertion,
    /// verified against the app certificate's public key), the managed-identity endpoint (IDENTITY_ENDPOINT /
    /// IDENTITY_HEADER, as Azure Automation and App Service serve it), Google's token endpoint (a service account's
    /// RS256 JWT, verified against its public key), and Microsoft Graph's sendMail, draft, attachments, upload sessions
    /// and send. One HTTPS port on loopback with a certificate made at start; the keys for the tests are written to
    /// --keys DIR: server.pem (to trust), app.pfx / app.cer (the app registration's certificate), google-sa.json.
    /// Control (no token): GET /_fake/stats, GET /_fake/requests, POST /_fake/faults, POST /_fake/expire-tokens,
    /// POST /_fake/token-check (body: a token; answers valid|expired|unknown, for the scripted SMTP server).
    /// </summary>
    public sealed class CloudStandIn : IAsyncDisposable
    {
        public const string Tenant = "contoso.onmicrosoft.com";
        public const string ClientId = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        public const string ManagedIdentityClientId = "11111111-2222-3333-4444-555555555555";
        private const string ServiceAccount = "mailer@resilientmail-test.iam.gserviceaccount.com";
        private readonly WebApplication _app;
        private readonly string _clientSecret;
        private readonly string _identityHeader;
        private readonly RSA _appKey;
        private readonly RSA _googleKey;
        private readonly TimeSpan _lifetime;
        private readonly string _store;
        private readonly HashSet<string> _mailboxes;
        private readonly string? _deniedMailbox;
        private readonly ConcurrentDictionary<string, (DateTimeOffset Expires, string Audience, string Kind)> _tokens = new();
        private readonly ConcurrentDictionary<string, Draft> _drafts = new();
        private readonly ConcurrentDictionary<string, Upload> _uploads = new();
        private readonly ConcurrentQueue<object> _requests = new();
        private readonly ConcurrentDictionary<string, int> _counts = new();
        private readonly object _faultLock = new();
        private readonly List<(string Path, Fault Fault, int Left)> _faults = new();
        private int _inFlight, _maxInFlight, _sequence;

        private sealed class Draft
        {
            public MimeMessage Message = new();
            public string Mailbox = "";
        }

        private sealed class Upload
        {
            public string DraftId = "";
            public string Name = "";
            public string ContentType = "application/octet-stream";
            public long Size;
            public MemoryStream Data = new();
        }

        private CloudStandIn(int port, string keys, string clientSecret, string identityHeader, TimeSpan lifetime, string store, IEnumerable<string> mailboxes, string? denied)
        {
            _clientSecret = clientSecret;
            _identityHeader = identityHeader;
            _lifetime = lifetime;
            _store = store;
            _mailboxes = new HashSet<string>(mailboxes, StringComparer.OrdinalIgnoreCase);
            _deniedMailbox = denied;
            Directory.CreateDirectory(keys);
            Directory.CreateDirectory(store);

            var serverKey = RSA.Create(2048);
            var request = new CertificateRequest("CN=127.0.0.1", serverKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            san.AddIpAddress(IPAddress.IPv6Loopback);
            san.AddDnsName("localhost");
            request.CertificateExtensions.Add(san.Build());
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            var server = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
            var serverPfx = X509CertificateLoader.LoadPkcs12(server.Export(X509ContentType.Pfx), null);
            File.WriteAllText(Path.Combine(keys, "server.pem"), server.ExportCertificatePem() + "\n");
            // The same certificate for Azurite over HTTPS (its OAuth mode needs it), and the key that signs storage tokens.
            File.WriteAllText(Path.Combine(keys, "server-key.pem"), serverKey.ExportPkcs8PrivateKeyPem() + "\n");
            _signer = serverKey;

            _appKey = RSA.Create(2048);
            var app = new CertificateRequest("CN=ResilientMail test app", _appKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
                .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
            File.WriteAllBytes(Path.Combine(keys, "app.pfx"), app.Export(X509ContentType.Pfx));
            File.WriteAllBytes(Path.Combine(keys, "app.cer"), app.Export(X509ContentType.Cert));
            AppThumbprint = app.Thumbprint;

            _googleKey = RSA.Create(2048);
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, o => o.UseHttps(serverPfx)));
            builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = 64 * 1024 * 1024);
            _app = builder.Build();
            _app.Run(HandleAsync);
            _keys = keys;
        }

        private readonly string _keys;
        public string AppThumbprint { get; }
        public Uri BaseUri { get; private set; } = new Uri("https://127.0.0.1/");

        public static async Task<CloudStandIn> StartAsync(int port, string keys, string clientSecret, string identityHeader, TimeSpan lifetime, string store,
            IEnumerable<string> mailboxes, string? denied)
        {
            var s = new CloudStandIn(port, keys, clientSecret, identityHeader, lifetime, store, mailboxes, denied);
            await s._app.StartAsync();
            var address = s._app.Urls.First().Replace("[::]", "127.0.0.1").Replace("localhost", "127.0.0.1");
            s.BaseUri = new Uri(address.EndsWith("/") ? address : address + "/");
            var google = new Dictionary<string, string>
            {
                ["type"] = "service_account", ["project_id"] = "resilientmail-test", ["private_key_id"] = "k1",
                ["private_key"] = s._googleKey.ExportPkcs8PrivateKeyPem() + "\n", ["client_email"] = ServiceAccount, ["client_id"] = "104",
                ["token_uri"] = new Uri(s.BaseUri, "google/token").ToString(),
            };
            File.WriteAllText(Path.Combine(keys, "google-sa.json"), JsonSerializer.Serialize(google));
            return s;
        }

        public ValueTask DisposeAsync() => _app.DisposeAsync();

        private void Count(string what) => _counts.AddOrUpdate(what, 1, (_, n) => n + 1);

        private async Task HandleAsync(HttpContext context)
        {
            var path = context.Request.Path.Value ?? "";
            var method = context.Request.Method;
            if (path.StartsWith("/_fake/")) { await ControlAsync(context, path); return; }
            var body = await ReadBodyAsync(context.Request);
            var headerNames = context.Request.Headers.Keys.Where(k => !k.Equals("Authorization", StringComparison.OrdinalIgnoreCase) && !k.StartsWith("X-IDENTITY", StringComparison.OrdinalIgnoreCase)).ToArray();
            _requests.Enqueue(new { method, path, size = body.Length, authorization = context.Request.Headers.ContainsKey("Authorization"), contentRange = context.Request.Headers["Content-Range"].ToString(), headers = headerNames, at = DateTimeOffset.UtcNow });
            var fault = NextFault(path);
            if (fault != null)
            {
                if (fault.DelayMs > 0) await Task.Delay(fault.DelayMs);
                if (fault.Abort) { context.Abort(); return; }
                context.Response.StatusCode = fault.Status;
                foreach (var h in fault.Headers) context.Response.Headers[h.Key] = h.Value;
                if (fault.Body != null) { context.Response.ContentType = "application/json"; await context.Response.WriteAsync(fault.Body); }
                return;
            }
            if (method == "POST" && path.EndsWith("/oauth2/v2.0/token")) { await EntraTokenAsync(context, path, body); return; }
            if (method == "GET" && path == "/msi/token") { await ManagedIdentityAsync(context); return; }
            if (method == "POST" && path == "/google/token") { await GoogleTokenAsync(context, body); return; }
            if (method == "PUT" && path.StartsWith("/upload/")) { await UploadAsync(context, path.Substring(8), body); return; }
            if (path.StartsWith("/v1.0/users/")) { await GraphAsync(context, path.Substring("/v1.0/users/".Length), body); return; }
            await Json(context, 404, new { error = new { code = "NotFound", message = $"The stand-in has no {method} {path}." } });
        }

        // ---- Microsoft Entra: client credentials ----
        private async Task EntraTokenAsync(HttpContext context, string path, byte[] raw)
        {
            var form = Form(raw);
            var tenant = path.Split('/', StringSplitOptions.RemoveEmptyEntries)[0];
            Task Error(string error, int code, string text) => Json(context, 400, new
            {
                error, error_description = $"AADSTS{code}: {text} Trace ID: 00000000-0000-0000-0000-000000000000 Correlation ID: 00000000-0000-0000-0000-000000000000 Timestamp: {DateTime.UtcNow:u}",
                error_codes = new[] { code }, timestamp = DateTime.UtcNow.ToString("u"), trace_id = "00000000-0000-0000-0000-000000000000", correlation_id = "00000000-0000-0000-0000-000000000000",
            });
            if (!tenant.Equals(Tenant, StringComparison.OrdinalIgnoreCase)) { await Error("invalid_request", 90002, $"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."); return; }
            if (form.GetValueOrDefault("grant_type") != "client_credentials") { await Error("unsupported_grant_type", 70003, "The app requested an unsupported grant type."); return; }
            if (form.GetValueOrDefault("client_id") != ClientId) { await Error("unauthorized_client", 700016, $"Application with identifier '{form.GetValueOrDefault("client_id")}' was not found in the directory '{tenant}'."); return; }
            var scope = form.GetValueOrDefault("scope") ?? "";
            if (!scope.EndsWith("/.default")) { await Error("invalid_scope", 1002012, $"The provided value for scope {scope} is not valid."); return; }
            string kind;
            if (form.TryGetValue("client_secret", out var secret))
            {
                if (secret != _clientSecret) { await Error("invalid_client", 7000215, $"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{ClientId}'."); return; }
                kind = "secret";
            }
            else if (form.GetValueOrDefault("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" && form.TryGetValue("client_assertion", out var assertion))
            {
                var tokenEndpoint = new Uri(BaseUri, path.TrimStart('/')).ToString();
                var problem = CheckJwt(assertion, _appKey, claims =>
                    claims.GetValueOrDefault("iss") == ClientId && claims.GetValueOrDefault("sub") == ClientId && claims.GetValueOrDefault("aud") == tokenEndpoint ? null
                    : $"iss/sub/aud are {claims.GetValueOrDefault("iss")}/{claims.GetValueOrDefault("sub")}/{claims.GetValueOrDefault("aud")}, not the app and {tokenEndpoint}", requireX5t: AppThumbprint);
                if (problem != null) { Count("assertion-refused"); await Error("invalid_client", 700027, $"Client assertion failed signature validation. ({problem})"); return; }
                kind = "assertion";
            }
            else { await Error("invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."); return; }
            var audience = scope.Substring(0, scope.Length - "/.default".Length);
            var token = Issue(audience, kind);
            await Json(context, 200, new { token_type = "Bearer", expires_in = (int)_lifetime.TotalSeconds, ext_expires_in = (int)_lifetime.TotalSeconds, access_token = token });
        }

        // ---- managed identity (App Service protocol, 2019-08-01, which Azure Automation serves) ----
        private async Task ManagedIdentityAsync(HttpContext context)
        {
            var q = context.Request.Query;
            if (context.Request.Headers["X-IDENTITY-HEADER"].ToString() != _identityHeader)
            {
                await Json(context, 401, new { statusCode = 401, message = "The X-IDENTITY-HEADER header is missing or wrong." });
                return;
            }
            var clientId = q["client_id"].ToString();
            if (clientId.Length > 0 && clientId != ManagedIdentityClientId)
            {
                await Json(context, 400, new { statusCode = 400, message = $"No user-assigned identity with client id {clientId} is assigned to this resource." });
                return;
            }
            var resource = q["resource"].ToString().TrimEnd('/');
            var token = Issue(resource, clientId.Length > 0 ? "managed-identity-user" : "managed-identity");
            await Json(context, 200, new
            {
                access_token = token, expires_on = DateTimeOffset.UtcNow.Add(_lifetime).ToUnixTimeSeconds().ToString(), resource, token_type = "Bearer",
                client_id = clientId.Length > 0 ? clientId : "system-assigned",
            });
        }

        // ---- Google: service account JWT bearer grant ----
        private async Task GoogleTokenAsync(HttpContext context, byte[] raw)
        {
            var form = Form(raw);
            if (form.GetValueOrDefault("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || !form.TryGetValue("assertion", out var jwt))
            {
                await Json(context, 400, new { error = "unsupported_grant_type", error_description = "Invalid grant_type." });
                return;
            }
            // Google.Apis.Auth posts to the key's token_uri and names Google's own token URL as the audience, which is what Google checks.
            const string tokenUri = "https://oauth2.googleapis.com/token";
            string? subject = null, scope = null;
            var problem = CheckJwt(jwt, _googleKey, claims =>
            {
                subject = claims.GetValueOrDefault("sub");
                scope = claims.GetValueOrDefault("scope");
                return claims.GetValueOrDefault("iss") == ServiceAccount && claims.GetValueOrDefault("aud") == tokenUri ? null : $"iss/aud are {claims.GetValueOrDefault("iss")}/{claims.GetValueOrDefault("aud")}";
            }, requireX5t: null);
            // Google says only "Invalid JWT Signature."; the stand-in says which check failed, for whoever reads a failing test.
            if (problem != null) { await Json(context, 400, new { error = "invalid_grant", error_description = "Invalid JWT Signature. (stand-in: " + problem + ")" }); return; }
            if (scope != "https://mail.google.com/") { await Json(context, 401, new { error = "unauthorized_client", error_description = "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested." }); return; }
            if (subject == null || !_mailboxes.Contains(subject)) { await Json(context, 400, new { error = "invalid_grant", error_description = "Invalid email or User ID" }); return; }
            var token = Issue("https://mail.google.com", "google");
            await Json(context, 200, new { access_token = token, expires_in = (int)_lifetime.TotalSeconds, token_type = "Bearer" });
        }

        private RSA? _signer;

        private string Issue(string audience, string kind)
        {
            // Azure Storage reads its token's claims (Azurite checks audience, issuer and times), so it gets a signed JWT, as
            // Entra issues; every other audience gets an opaque token, which is all Graph, SMTP and the tests need.
            var token = audience.StartsWith("https://storage.azure.com", StringComparison.Ordinal) ? StorageJwt(audience)
                : "ya29." + Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();
            _tokens[token] = (DateTimeOffset.UtcNow.Add(_lifetime), audience, kind);
            Count("token-" + kind);
            return token;
        }

        private string StorageJwt(string audience)
        {
            static string B64(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');
            var now = DateTimeOffset.UtcNow;
            var header = B64(JsonSerializer.SerializeToUtf8Bytes(new { alg = "RS256", typ = "JWT" }));
            var payload = B64(JsonSerializer.SerializeToUtf8Bytes(new
            {
                aud = audience, iss = "https://sts.windows.net/8a4d1b2c-0000-4000-8000-00000000c0de/", iat = now.ToUnixTimeSeconds(), nbf = now.AddMinutes(-5).ToUnixTimeSeconds(),
                exp = now.Add(_lifetime).ToUnixTimeSeconds(), oid = "5e1f0c9a-0000-4000-8000-00000000a001", sub = "managed-identity", jti = Guid.NewGuid().ToString("n"),
            }));
            Count("token-storage");
            var signature = B64(_signer!.SignData(System.Text.Encoding.ASCII.GetBytes(header + "." + payload), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1));
            return $"{header}.{payload}.{signature}";
        }

        /// <summary>Null when the JWT is signed by <paramref name="key"/> (RS256 or PS256), unexpired and its claims pass; else why not.</summary>
        private static string? CheckJwt(string jwt, RSA key, Func<Dictionary<string, string?>, string?> claimsCheck, string? requireX5t)
        {
            var parts = jwt.Split('.');
            if (parts.Length != 3) return "not a JWT";
            using var header = JsonDocument.Parse(Base64Url(parts[0]));
            var alg = header.RootElement.TryGetProperty("alg", out var a) ? a.GetString() : null;
            var padding = alg == "RS256" ? RSASignaturePadding.Pkcs1 : alg == "PS256" ? RSASignaturePadding.Pss : null;
            if (padding == null) return $"alg {alg}";
            if (requireX5t != null)
            {
                var x5t = header.RootElement.TryGetProperty("x5t", out var t) ? t.GetString() : null;
                var x5tS256 = header.RootElement.TryGetProperty("x5t#S256", out var t2) ? t2.GetString() : null;
                if (x5t == null && x5tS256 == null) return "no x5t";
                if (x5t != null && Convert.ToHexString(Base64Url(x5t)) != requireX5t) return "x5t is another certificate";
            }
            if (!key.VerifyData(Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]), Base64Url(parts[2]), HashAlgorithmName.SHA256, padding)) return "bad signature";
            using var payload = JsonDocument.Parse(Base64Url(parts[1]));
            var claims = payload.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : p.Value.GetRawText());
            if (!long.TryParse(claims.GetValueOrDefault("exp"), out var exp) || DateTimeOffset.FromUnixTimeSeconds(exp) < DateTimeOffset.UtcNow) return "expired or no exp";
            return claimsCheck(claims);
        }

        // ---- Microsoft Graph ----
        private async Task GraphAsync(HttpContext context, string rest, byte[] body)
        {
            var segments = rest.Split('/');
            var mailbox = Uri.UnescapeDataString(segments[0]);
            var auth = context.Request.Headers["Authorization"].ToString();
            var token = auth.StartsWith("Bearer ") ? auth.Substring(7) : "";
            if (!_tokens.TryGetValue(token, out var issued) || issued.Audience != BaseUri.GetLeftPart(UriPartial.Authority))
            {
                await GraphError(context, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.");
                return;
            }
            if (issued.Expires < DateTimeOffset.UtcNow) { Count("graph-401-expired"); await GraphError(context, 401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."); return; }
            if (mailbox.Equals(_deniedMailbox, StringComparison.OrdinalIgnoreCase))
            {
                await GraphError(context, 403, "ErrorAccessDenied", "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.");
                return;
            }
            if (!_mailboxes.Contains(mailbox)) { await GraphError(context, 404, "ErrorInvalidUser", $"The requested user '{mailbox}' is invalid."); return; }
            int now = Interlocked.Increment(ref _inFlight);
            try
            {
                int max;
                while ((max = Volatile.Read(ref _maxInFlight)) < now && Interlocked.CompareExchange(ref _maxInFlight, now, max) != max) { }
                if (now > 4) { Count("graph-429-concurrency"); context.Response.Headers["Retry-After"] = "1"; await GraphError(context, 429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit."); return; }
                await Task.Delay(20); // a request takes a moment, so that concurrency can be seen
                if (body.Length > 4 * 1024 * 1024) { await GraphError(context, 413, "RequestEntityTooLarge", "The maximum request length supported is 4MB."); return; }
                var method = context.Request.Method;
                if (segments.Length == 2 && segments[1] == "sendMail" && method == "POST")
                {
                    var message = Mime(context, body, out var problem);
                    if (message == null) { await GraphError(context, 400, "ErrorMimeContentInvalidBase64String", problem!); return; }
                    if (await BadRecipientAsync(context, message)) return;
                    Store(message, mailbox, "sendMail");
                    context.Response.StatusCode = 202;
                    return;
                }
                if (segments.Length == 2 && segments[1] == "messages" && method == "POST")
                {
                    var message = Mime(context, body, out var problem);
                    if (message == null) { await GraphError(context, 400, "ErrorMimeContentInvalidBase64String", problem!); return; }
                    var id = "AAMk" + Interlocked.Increment(ref _sequence);
                    _drafts[id] = new Draft { Message = message, Mailbox = mailbox };
                    Count("draft");
                    await Json(context, 201, new { id, isDraft = true, subject = message.Subject });
                    return;
                }
                if (segments.Length >= 4 && segments[1] == "messages" && _drafts.TryGetValue(segments[2], out var draft))
                {
                    var id = segments[2];
                    var action = string.Join('/', segments.Skip(3));
                    if (action == "attachments" && method == "POST")
                    {
                        using var doc = JsonDocument.Parse(body);
                        var r = doc.RootElement;
                        AddAttachment(draft, r.GetProperty("name").GetString()!, r.GetProperty("contentType").GetString()!, Convert.FromBase64String(r.GetProperty("contentBytes").GetString()!));
                        await Json(context, 201, new { id = "att" + Interlocked.Increment(ref _sequence) });
                        return;
                    }
                    if (action == "attachments/createUploadSession" && method == "POST")
                    {
                        using var doc = JsonDocument.Parse(body);
                        var item = doc.RootElement.GetProperty("AttachmentItem");
                        var size = item.GetProperty("size").GetInt64();
                        if (size > 150L * 1024 * 1024) { await GraphError(context, 400, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize", "Attachment size exceeds 150 MB."); return; }
                        var session = Convert.ToHexString(RandomNumberGenerator.GetBytes(12)).ToLowerInvariant();
                        _uploads[session] = new Upload
                        {
                            DraftId = id, Name = item.GetProperty("name").GetString()!, Size = size,
                            ContentType = item.TryGetProperty("contentType", out var ct) && ct.ValueKind == JsonValueKind.String ? ct.GetString()! : "application/octet-stream",
                        };
                        Count("upload-session");
                        await Json(context, 201, new { uploadUrl = new Uri(BaseUri, "upload/" + session + "?authtoken=" + session).ToString(), expirationDateTime = DateTime.UtcNow.AddHours(1).ToString("o"), nextExpectedRanges = new[] { "0-" } });
                        return;
                    }
                    if (action == "send" && method == "POST")
                    {
                        if (_uploads.Values.Any(u => u.DraftId == id)) { await GraphError(context, 400, "ErrorInvalidRequest", "An upload session of this draft is not finished."); return; }
                        if (await BadRecipientAsync(context, draft.Message)) return;
                        _drafts.TryRemove(id, out _);
                        Store(draft.Message, mailbox, "draft");
                        context.Response.StatusCode = 202;
                        return;
                    }
                }
                if (segments.Length == 3 && segments[1] == "messages" && method == "DELETE")
                {
                    Count(_drafts.TryRemove(segments[2], out _) ? "draft-deleted" : "delete-unknown");
                    context.Response.StatusCode = 204;
                    return;
                }
                await GraphError(context, 400, "BadRequest", $"The stand-in does not serve {method} users/{rest}.");
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }

        private async Task UploadAsync(HttpContext context, string session, byte[] body)
        {
            if (!_uploads.TryGetValue(session, out var upload)) { await GraphError(context, 404, "ItemNotFound", "The upload session does not exist or has expired."); return; }
            // The upload URL is pre-authenticated; Graph refuses an Authorization header on it.
            if (context.Request.Headers.ContainsKey("Authorization")) { await GraphError(context, 401, "InvalidAuthenticationToken", "The upload URL must not be sent an Authorization header."); return; }
            if (body.Length > 4 * 1024 * 1024) { await GraphError(context, 413, "RequestEntityTooLarge", "A range may be at most 4 MB."); return; }
            var range = context.Request.Headers["Content-Range"].ToString(); // bytes a-b/N
            var m = System.Text.RegularExpressions.Regex.Match(range, @"^bytes (\d+)-(\d+)/(\d+)$");
            if (!m.Success) { await GraphError(context, 400, "InvalidContentRange", $"Content-Range '{range}' is not 'bytes a-b/N'."); return; }
            long from = long.Parse(m.Groups[1].Value), to = long.Parse(m.Groups[2].Value), total = long.Parse(m.Groups[3].Value);
            if (total != upload.Size || from != upload.Data.Length || to - from + 1 != body.Length) { await GraphError(context, 416, "InvalidRange", $"Expected bytes from {upload.Data.Length} of {upload.Size}."); return; }
            bool last = to + 1 == total;
            if (!last && body.Length % (320 * 1024) != 0) { await GraphError(context, 400, "InvalidRange", "Ranges other than the last must be a multiple of 320 KiB."); return; }
            upload.Data.Write(body);
            Count("upload-range");
            if (!last) { await Json(context, 200, new { expirationDateTime = DateTime.UtcNow.AddHours(1).ToString("o"), nextExpectedRanges = new[] { $"{to + 1}-" } }); return; }
            _uploads.TryRemove(session, out _);
            if (_drafts.TryGetValue(upload.DraftId, out var draft)) AddAttachment(draft, upload.Name, upload.ContentType, upload.Data.ToArray());
            context.Response.Headers["Location"] = new Uri(BaseUri, $"v1.0/users/{Uri.EscapeDataString(draft?.Mailbox ?? "")}/messages/{upload.DraftId}/attachments/x").ToString();
            context.Response.StatusCode = 201;
        }

        private static void AddAttachment(Draft draft, string name, string contentType, byte[] content)
        {
            var message = draft.Message;
            var part = new MimePart(ContentType.Parse(contentType)) { Content = new MimeContent(new MemoryStream(content)), ContentDisposition = new ContentDisposition(ContentDisposition.Attachment), ContentTransferEncoding = ContentEncoding.Base64, FileName = name };
            if (message.Body is Multipart mixed && mixed.ContentType.MediaSubtype.Equals("mixed", StringComparison.OrdinalIgnoreCase)) mixed.Add(part);
            else message.Body = new Multipart("mixed") { message.Body, part };
        }

        private async Task<bool> BadRecipientAsync(HttpContext context, MimeMessage message)
        {
            var bad = message.GetRecipients().FirstOrDefault(r => r.Address.StartsWith("invalid", StringComparison.OrdinalIgnoreCase));
            if (bad == null) return false;
            await GraphError(context, 400, "ErrorInvalidRecipients", $"At least one recipient isn't valid., Recipient '{bad.Address}' isn't resolved. All recipients must be resolved before a message can be submitted.");
            return true;
        }

        private static MimeMessage? Mime(HttpContext context, byte[] body, out string? problem)
        {
            problem = null;
            if (!context.Request.ContentType?.StartsWith("text/plain") ?? true) { problem = "MIME content must be sent as text/plain (base64)."; return null; }
            try { return MimeMessage.Load(new MemoryStream(Convert.FromBase64String(Encoding.ASCII.GetString(body)))); }
            catch (FormatException) { problem = "Invalid base64 string for MIME content."; return null; }
        }

        private void Store(MimeMessage message, string mailbox, string via)
        {
            var n = Interlocked.Increment(ref _sequence);
            using (var file = File.Create(Path.Combine(_store, $"{n:D6}.eml"))) message.WriteTo(file);
            Count("sent-" + via);
            Count("sent");
        }

        // ---- control ----
        private async Task ControlAsync(HttpContext context, string path)
        {
            if (path == "/_fake/stats") await Json(context, 200, new { counts = _counts.ToDictionary(k => k.Key, k => k.Value), maxConcurrent = _maxInFlight, drafts = _drafts.Count });
            else if (path == "/_fake/requests") await Json(context, 200, _requests.ToArray());
            else if (path == "/_fake/expire-tokens" && context.Request.Method == "POST")
            {
                foreach (var k in _tokens.Keys) _tokens[k] = _tokens[k] with { Expires = DateTimeOffset.UtcNow.AddSeconds(-1) };
                await Json(context, 200, new { expired = _tokens.Count });
            }
            else if (path == "/_fake/token-check" && context.Request.Method == "POST")
            {
                var token = Encoding.UTF8.GetString(await ReadBodyAsync(context.Request)).Trim();
                var verdict = !_tokens.TryGetValue(token, out var t) ? "unknown" : t.Expires < DateTimeOffset.UtcNow ? "expired" : "valid:" + t.Kind;
                Count("smtp-" + verdict.Split(':')[0]);
                await context.Response.WriteAsync(verdict);
            }
            else if (path == "/_fake/faults" && context.Request.Method == "POST")
            {
                using var doc = JsonDocument.Parse(await ReadBodyAsync(context.Request));
                lock (_faultLock)
                    foreach (var f in doc.RootElement.EnumerateArray())
                    {
                        var fault = f.Deserialize<Fault>(new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
                        _faults.Add((f.TryGetProperty("path", out var p) ? p.GetString() ?? "" : "", fault, fault.Times));
                    }
                context.Response.StatusCode = 204;
            }
            else context.Response.StatusCode = 404;
        }

        private Fault? NextFault(string path)
        {
            lock (_faultLock)
            {
                for (int i = 0; i < _faults.Count; i++)
                {
                    var (match, fault, left) = _faults[i];
                    if (!path.Contains(match, StringComparison.Ordinal)) continue;
                    if (left <= 1) _faults.RemoveAt(i); else _faults[i] = (match, fault, left - 1);
                    return fault;
                }
            }
            return null;
        }

        private static async Task<byte[]> ReadBodyAsync(HttpRequest request)
        {
            using var buffer = new MemoryStream();
            await request.Body.CopyToAsync(buffer);
            return buffer.ToArray();
        }

        private static Dictionary<string, string> Form(byte[] raw) =>
            Encoding.ASCII.GetString(raw).Split('&', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2))
                .ToDictionary(p => Uri.UnescapeDataString(p[0].Replace('+', ' ')), p => p.Length > 1 ? Uri.UnescapeDataString(p[1].Replace('+', ' ')) : "");

        private static byte[] Base64Url(string s)
        {
            s = s.Replace('-', '+').Replace('_', '/');
            return Convert.FromBase64String(s.PadRight(s.Length + (4 - s.Length % 4) % 4, '='));
        }

        private static Task GraphError(HttpContext context, int status, string code, string message) =>
            Json(context, status, new { error = new { code, message, innerError = new { date = DateTime.UtcNow.ToString("s"), requestId = Guid.NewGuid() } } });

        private static async Task Json(HttpContext context, int status, object value)
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(JsonSerializer.Serialize(value));
        }
    }
}
