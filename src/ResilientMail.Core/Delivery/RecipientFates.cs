using System;
using System.Collections.Generic;
using System.Linq;
using MimeKit;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Transports;

namespace ResilientMail.Core.Delivery
{
    /// <summary>
    /// The fate of each envelope recipient of one message across its attempts. A recipient the server took is never
    /// sent to again; one refused for good is not tried again; only the others go in the next attempt. A recipient an
    /// attempt may have delivered to (the message was on the wire when the answer was lost) stays Uncertain unless a
    /// later attempt is known to have delivered it: a later failure does not prove the earlier attempt failed.
    /// </summary>
    internal sealed class RecipientFates
    {
        private readonly MimeMessage _message;
        private readonly List<MailboxAddress> _all;
        // Made when first needed: the healthy path (everyone taken at the first attempt) uses none of them.
        private HashSet<string>? _deliveredSet;
        private Dictionary<string, RecipientRefusal>? _finalMap, _openMap;
        private HashSet<string>? _maybeSet;
        private List<RecipientRefusal>? _deferredList;
        private HashSet<string> _delivered => _deliveredSet ??= new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        private Dictionary<string, RecipientRefusal> _final => _finalMap ??= new Dictionary<string, RecipientRefusal>(StringComparer.OrdinalIgnoreCase);
        private Dictionary<string, RecipientRefusal> _open => _openMap ??= new Dictionary<string, RecipientRefusal>(StringComparer.OrdinalIgnoreCase);
        private HashSet<string> _maybe => _maybeSet ??= new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        private List<RecipientRefusal> _deferredNow => _deferredList ??= new List<RecipientRefusal>();
        private Failure? _ambiguous;

        public RecipientFates(MimeMessage message)
        {
            _message = message;
            _all = Envelope.Recipients(message);
        }

        // The healthy path: the first attempt took the message for everyone; nothing else needs recording.
        private bool _allAtOnce;
        private bool _recorded;

        /// <summary>Some recipient has the message already.</summary>
        public bool AnyDelivered => _allAtOnce || _deliveredSet != null && _deliveredSet.Count > 0;

        /// <summary>Whom the next attempt goes to: everyone until some recipient's fate is known (the list the transport would make itself).</summary>
        public IReadOnlyList<MailboxAddress> Remaining()
        {
            if ((_deliveredSet == null || _deliveredSet.Count == 0) && (_finalMap == null || _finalMap.Count == 0)) return _all;
            return _all.Where(m => !_delivered.Contains(m.Address) && !_final.ContainsKey(m.Address)).ToArray();
        }

        /// <summary>
        /// What one attempt settled. <paramref name="succeeded"/>: the transport took the message (for everyone it did not
        /// refuse); otherwise <paramref name="failure"/> is how it ended (null: cancelled, and only what it settled counts).
        /// </summary>
        public void Record(SendAttempt state, bool succeeded, Failure? failure)
        {
            if (!_recorded && succeeded && (state.Recipients == null || ReferenceEquals(state.Recipients, _all)) && state.Refused.Count == 0)
            {
                _recorded = _allAtOnce = true;
                return;
            }
            _recorded = true;
            _deferredNow.Clear();
            var envelope = state.Recipients ?? _all;
            foreach (var address in state.Delivered) Deliver(address);
            var refusedNow = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (var refusal in state.Refused)
            {
                refusedNow.Add(refusal.Address);
                if (_delivered.Contains(refusal.Address)) continue;
                if (refusal.Failure.Kind == FailureKind.Permanent) { _final[refusal.Address] = refusal; _open.Remove(refusal.Address); }
                else { _open[refusal.Address] = refusal; if (succeeded) _deferredNow.Add(refusal); }
            }
            foreach (var m in envelope)
            {
                if (_delivered.Contains(m.Address) || refusedNow.Contains(m.Address) || _final.ContainsKey(m.Address)) continue;
                if (succeeded) { Deliver(m.Address); continue; } // the transport took the message for everyone it did not refuse
                if (failure == null) continue;
                if (failure.Kind == FailureKind.Ambiguous) { _maybe.Add(m.Address); _ambiguous ??= failure; }
                var shared = new RecipientRefusal(m.Address, failure);
                if (failure.Kind == FailureKind.Permanent && failure.Refused == null) _final[m.Address] = shared;
                else _open[m.Address] = shared;
            }
        }

        private void Deliver(string address)
        {
            _delivered.Add(address);
            _open.Remove(address);
        }

        /// <summary>After an attempt that delivered: the failure that makes the retry go to the recipients deferred one by one, if any.</summary>
        public Failure? Deferred()
        {
            if (_deferredList == null || _deferredList.Count == 0) return null;
            var list = _deferredNow.ToArray();
            return new Failure(FailureKind.Transient, FailureReason.RecipientRejected,
                $"Delivered to {_delivered.Count} of {_all.Count} recipients; deferred by the server: {Refusals.Describe(list)}")
            {
                ServerReply = list[0].Failure.ServerReply,
                StatusCode = list[0].Failure.StatusCode,
                RetryAfter = list[0].Failure.RetryAfter,
                Refused = list,
            };
        }

        public string DeliveredText() => _allAtOnce ? string.Join(", ", _all.Select(m => m.Address)) : string.Join(", ", _all.Where(m => _delivered.Contains(m.Address)).Select(m => m.Address));

        /// <summary>The message's result: every recipient either delivered or with its own failure.</summary>
        public DeliveryResult Result(string recipients, int attempts, TimeSpan elapsed, Receipt? receipt, Failure? last, Exception? error)
        {
            if (_allAtOnce)
            {
                var everyone = new string[_all.Count];
                for (int i = 0; i < everyone.Length; i++) everyone[i] = _all[i].Address;
                return new DeliveryResult(recipients, DeliveryStatus.Sent, attempts, elapsed) { MessageId = receipt?.MessageId, ServerReply = receipt?.ServerReply, Delivered = everyone };
            }
            var refused = new List<RecipientRefusal>();
            foreach (var m in _all)
            {
                if (_delivered.Contains(m.Address)) continue;
                var fate = _final.TryGetValue(m.Address, out var f) ? f : _open.TryGetValue(m.Address, out var o) ? o
                         : new RecipientRefusal(m.Address, last ?? new Failure(FailureKind.Permanent, FailureReason.Rejected, "Not sent."));
                if (_maybe.Contains(m.Address) && fate.Failure.Kind != FailureKind.Ambiguous)
                    fate = new RecipientRefusal(m.Address, MaybeDelivered(fate.Failure));
                refused.Add(fate);
            }
            var delivered = _all.Where(m => _delivered.Contains(m.Address)).Select(m => m.Address).ToArray();
            var status = refused.Count == 0 ? DeliveryStatus.Sent
                : delivered.Length > 0 ? DeliveryStatus.PartiallySent
                : refused.Any(r => r.Failure.Kind == FailureKind.Ambiguous) ? DeliveryStatus.Uncertain
                : DeliveryStatus.Failed;
            if (status == DeliveryStatus.Sent)
                return new DeliveryResult(recipients, status, attempts, elapsed) { MessageId = receipt?.MessageId, ServerReply = receipt?.ServerReply, Delivered = delivered };

            var failure = Summary(status, refused, delivered.Length, last);
            return new DeliveryResult(recipients, status, attempts, elapsed)
            {
                MessageId = status == DeliveryStatus.Failed ? null : receipt?.MessageId ?? _message.MessageId,
                ServerReply = receipt?.ServerReply ?? failure.ServerReply,
                Failure = failure,
                // The original exception stays the InnerException (a refused RCPT TO's SmtpCommandException, say).
                Error = error is MailDeliveryException same && same.Failure == failure ? error : new MailDeliveryException(failure, (error as MailDeliveryException)?.InnerException ?? error),
                Delivered = delivered,
                Refused = refused,
            };
        }

        private Failure MaybeDelivered(Failure later) => new Failure(FailureKind.Ambiguous, later.Reason,
            $"An earlier attempt may have delivered it ({_ambiguous?.Message}); the last attempt: {later.Message}")
        {
            ServerReply = later.ServerReply,
            StatusCode = later.StatusCode,
        };

        private Failure Summary(DeliveryStatus status, List<RecipientRefusal> refused, int delivered, Failure? last)
        {
            // One fate shared by every recipient (the usual case: one recipient, or the whole message refused): that failure.
            var first = refused[0].Failure;
            if (delivered == 0 && refused.All(r => ReferenceEquals(r.Failure, first)) && first.Refused == null) return first;
            if (delivered == 0 && refused.Count == 1) return first with { Refused = refused };
            var kind = refused.Any(r => r.Failure.Kind == FailureKind.Ambiguous) ? FailureKind.Ambiguous
                     : refused.All(r => r.Failure.Kind == FailureKind.Permanent) ? FailureKind.Permanent : FailureKind.Transient;
            // A failure that stops the run (credentials, certificate, outage) keeps its reason, so the run still stops.
            var reason = last != null && last.StopsRun ? last.Reason : FailureReason.RecipientRejected;
            var text = status == DeliveryStatus.PartiallySent
                ? $"Delivered to {delivered} of {delivered + refused.Count} recipients; not to {Refusals.Describe(refused)}"
                : $"Not delivered to any recipient: {Refusals.Describe(refused)}";
            return new Failure(kind, reason, text) { ServerReply = first.ServerReply, StatusCode = first.StatusCode, Refused = refused };
        }
    }
}
