using System;
using System.Threading;
using System.Threading.Tasks;
using ResilientMail.Core.Resilience;

namespace ResilientMail.Core.Identity
{
    /// <summary>An OAuth2 access token and the moment it stops working.</summary>
    public sealed record IssuedToken(Secret Value, DateTimeOffset ExpiresOn);

    /// <summary>
    /// Where a transport's access token comes from: one per transport, shared by every worker of a run, so that a
    /// campaign holds one token at a time and renews it once. A token is renewed before it expires (at the latest
    /// five minutes before, earlier for short-lived ones), however long the run; after a server refused it
    /// (<see cref="Invalidate"/>) the next caller renews it. Failures to get one are <see cref="MailDeliveryException"/>s
    /// classified by <see cref="TokenFailures"/>: a wrong tenant or an expired secret stops a run, an unreachable token
    /// endpoint is retried like any network failure.
    /// </summary>
    public abstract class TokenSource
    {
        private static readonly TimeSpan RenewMargin = TimeSpan.FromMinutes(5);
        private readonly SemaphoreSlim _gate = new SemaphoreSlim(1, 1);
        private IssuedToken? _current;
        private DateTimeOffset _renewAt;

        protected TokenSource(TimeProvider? time) => Time = time ?? TimeProvider.System;

        protected TimeProvider Time { get; }

        /// <summary>"Microsoft Entra app 0f1e… in tenant contoso.onmicrosoft.com (certificate 3A5C…)": never a secret.</summary>
        public abstract string Description { get; }

        /// <summary>False for a token the caller handed over: it cannot be renewed, only replaced by the caller.</summary>
        public virtual bool CanRenew => true;

        /// <summary>How many tokens this source has obtained (for verbose output and tests).</summary>
        public int Obtained { get; private set; }

        /// <summary>A token valid for a while yet: the one held, or a new one.</summary>
        public async Task<IssuedToken> GetAsync(CancellationToken cancellationToken)
        {
            var held = _current;
            if (held != null && Time.GetUtcNow() < _renewAt) return held;
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var now = Time.GetUtcNow();
                if (_current != null && now < _renewAt) return _current;
                if (_current != null && !CanRenew) return _current; // the server will say whether it still works
                var fresh = await ObtainAsync(cancellationToken).ConfigureAwait(false);
                Obtained++;
                var lifetime = fresh.ExpiresOn - now;
                var margin = lifetime <= TimeSpan.Zero ? TimeSpan.Zero : TimeSpan.FromTicks(Math.Min(RenewMargin.Ticks, lifetime.Ticks / 2));
                _renewAt = fresh.ExpiresOn - margin;
                _current = fresh;
                return fresh;
            }
            finally
            {
                _gate.Release();
            }
        }

        /// <summary>The server refused <paramref name="token"/> (401, 535): the next <see cref="GetAsync"/> renews it. False when it cannot be renewed.</summary>
        public bool Invalidate(IssuedToken token)
        {
            if (!CanRenew) return false;
            if (ReferenceEquals(_current, token)) _renewAt = DateTimeOffset.MinValue;
            OnInvalidated();
            return true;
        }

        /// <summary>A refused token must not come back from a library's own cache.</summary>
        protected virtual void OnInvalidated() { }

        /// <summary>Asks the identity provider for a new token.</summary>
        protected abstract Task<IssuedToken> ObtainAsync(CancellationToken cancellationToken);
    }

    /// <summary>A token the caller fetched: used until the server refuses it, never renewed.</summary>
    public sealed class GivenToken : TokenSource
    {
        private readonly Secret _token;

        public GivenToken(Secret token) : base(null) => _token = token ?? throw new ArgumentNullException(nameof(token));

        public override string Description => "an access token passed in";
        public override bool CanRenew => false;

        protected override Task<IssuedToken> ObtainAsync(CancellationToken cancellationToken) =>
            Task.FromResult(new IssuedToken(_token, DateTimeOffset.MaxValue));
    }
}
