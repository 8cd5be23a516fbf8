using System;
using System.IO;
using System.Net.Http;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Azure.Identity;
using Google.Apis.Auth.OAuth2.Responses;
using Microsoft.Identity.Client;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Identity
{
    /// <summary>
    /// What a failed token request means. An identity provider that cannot be reached is a network failure like any other
    /// (retried, and the connectivity gate waits); a refusal (wrong tenant, unknown app, an expired or mistyped secret, a
    /// certificate the app does not know, missing consent, no managed identity here) is an authentication failure that
    /// stops the run, with what to fix in the portal. Messages never hold a secret: the providers' own texts name ids only.
    /// </summary>
    internal static class TokenFailures
    {
        private static readonly Regex AadstsCode = new Regex(@"AADSTS(\d+)", RegexOptions.CultureInvariant);

        public static Failure FromEntra(Exception error, OAuthSettings settings, string scope)
        {
            if (Network(error) is Failure network) return network with { Message = $"Microsoft Entra ({settings.AuthorityHost ?? OAuthSettings.PublicCloud}) could not be reached for a token: {network.Message}" };
            var service = Find<MsalServiceException>(error);
            if (service != null && (service.StatusCode == 429 || service.StatusCode >= 500))
                return new Failure(FailureKind.Transient, service.StatusCode == 429 ? FailureReason.Throttled : FailureReason.ServerBusy,
                    $"Microsoft Entra answered {service.StatusCode} to the token request: {FirstLine(service.Message)}") { StatusCode = service.StatusCode };
            if (Find<CredentialUnavailableException>(error) is CredentialUnavailableException unavailable)
                return Stop($"No managed identity answered here ({FirstLine(unavailable.Message)}). A managed identity exists only on an Azure resource that has one switched on: " +
                    "an Azure Automation account (Identity > System assigned: On), a VM, an Arc-enabled server or an App Service; a user-assigned one must be assigned to that resource.");

            var text = FirstLine(service?.Message ?? Innermost(error).Message);
            var match = AadstsCode.Match(service?.Message ?? error.ToString());
            string who = $"app {settings.ClientId} in tenant {settings.TenantId}";
            var advice = match.Success ? match.Groups[1].Value switch
            {
                "90002" or "900023" or "90013" => $"The tenant '{settings.TenantId}' was not found: use the directory (tenant) id or a verified domain of the tenant the app is registered in.",
                "700016" => $"No application {settings.ClientId} is registered in tenant {settings.TenantId}: check the application (client) id, and that the tenant is the app's own.",
                "7000215" => $"The client secret is wrong for {who}. A common slip: the secret's ID was given instead of its Value (shown only once, when the secret is created).",
                "7000222" => $"The client secret of {who} has expired: add a new secret under Certificates & secrets and use its value.",
                "700027" or "700024" or "7000274" or "700023" => $"Microsoft Entra did not accept the certificate's signature for {who}: upload the certificate's public part (.cer) under Certificates & secrets of that app.",
                "65001" or "650057" => $"{who} has not been granted consent: an administrator must grant admin consent for its API permissions ({PermissionFor(scope)}).",
                "500011" or "500014" => $"The resource of '{scope}' is not available in tenant {settings.TenantId} (is Exchange Online licensed there?).",
                "70011" or "1002012" => $"Microsoft Entra refused the scope '{scope}'.",
                "7000112" or "700025" => $"{who} is disabled or not usable for this sign-in.",
                _ => null,
            } : null;
            return Stop(advice != null ? $"{advice} (Microsoft Entra: {text})" : $"Microsoft Entra refused the token request for {settings}: {text}");
        }

        public static Failure FromGoogle(Exception error, string serviceAccount, string user, string scope, Uri tokenUri)
        {
            if (Network(error) is Failure network) return network with { Message = $"Google's token endpoint ({tokenUri.GetLeftPart(UriPartial.Authority)}) could not be reached: {network.Message}" };
            if (Find<TokenResponseException>(error) is TokenResponseException response)
            {
                var status = (int?)response.StatusCode;
                if (status == 429 || status >= 500)
                    return new Failure(FailureKind.Transient, FailureReason.ServerBusy, $"Google's token endpoint answered {status}: {response.Error?.ErrorDescription}") { StatusCode = status };
                var code = response.Error?.Error;
                var description = response.Error?.ErrorDescription;
                var advice = code switch
                {
                    "unauthorized_client" => $"The service account {serviceAccount} may not act as {user} with the scope {scope}: in the Admin console (Security > API controls > " +
                        $"Domain-wide delegation) add its client id with the scope {scope}.",
                    "invalid_grant" => $"Google refused the service account's signed request for {user}: the key may have been deleted or disabled, this machine's clock may be wrong, " +
                        $"or {user} is not a user of the Workspace domain.",
                    "access_denied" => $"Google denied access for {user}: the user may be suspended, or Gmail off for them.",
                    _ => null,
                };
                return new Failure(FailureKind.Permanent, FailureReason.Authentication,
                    (advice ?? $"Google refused the token request for {user}.") + $" (Google: {code}{(description != null ? ": " + description : "")})") { Remedy = Remedy.GoogleWorkspace };
            }
            return new Failure(FailureKind.Permanent, FailureReason.Authentication, $"No token from Google for {user}: {FirstLine(Innermost(error).Message)}") { Remedy = Remedy.GoogleWorkspace };
        }

        private static string PermissionFor(string scope) =>
            scope.IndexOf("outlook.office", StringComparison.OrdinalIgnoreCase) >= 0 ? "Office 365 Exchange Online: SMTP.SendAsApp" : "Microsoft Graph: Mail.Send, application";

        private static Failure Stop(string message) => new Failure(FailureKind.Permanent, FailureReason.Authentication, message) { Remedy = Remedy.Microsoft365 };

        private static Failure? Network(Exception error)
        {
            // The library's own network timeout (the caller's cancellation never reaches here): a slow identity endpoint.
            if (Find<OperationCanceledException>(error) is OperationCanceledException)
                return new Failure(FailureKind.Transient, FailureReason.Timeout, "the token request timed out");
            if (Find<SocketException>(error) is SocketException socket)
                return new Failure(FailureKind.Transient, FailureReason.Network, $"{socket.Message} ({socket.SocketErrorCode})");
            if (Find<System.Security.Authentication.AuthenticationException>(error) is Exception tls)
                return new Failure(FailureKind.Permanent, FailureReason.Certificate, $"the TLS handshake failed: {tls.Message}") { Remedy = Remedy.TrustCertificate };
            var http = (Exception?)Find<HttpRequestException>(error) ?? Find<IOException>(error);
            if (http != null)
                return new Failure(FailureKind.Transient, FailureReason.Network, FirstLine(Innermost(http).Message));
            if (Find<Azure.RequestFailedException>(error) is Azure.RequestFailedException failed && failed.Status == 0)
                return new Failure(FailureKind.Transient, FailureReason.Network, FirstLine(Innermost(failed).Message));
            return null;
        }

        private static string FirstLine(string text)
        {
            var line = text.Split(new[] { '\r', '\n' }, StringSplitOptions.RemoveEmptyEntries);
            return line.Length == 0 ? text : line[0].Trim();
        }

        private static T? Find<T>(Exception error) where T : Exception
        {
            for (var e = error; e != null; e = e.InnerException) if (e is T t) return t;
            if (error is AggregateException aggregate) foreach (var inner in aggregate.InnerExceptions) if (Find<T>(inner) is T found) return found;
            return null;
        }

        private static Exception Innermost(Exception error)
        {
            var e = error;
            while (e.InnerException != null) e = e.InnerException;
            return e;
        }
    }
}
