using System;
using System.Collections.Generic;

namespace ResilientMail.Core.Messages
{
    public enum ValidationProblem
    {
        MissingPlaceholder,
        InvalidAddress,
        HeaderInjection,
        InvalidHeader,
        AttachmentNotFound,
        MissingRecipient,
        MissingContent,
    }

    /// <summary>A record that cannot become a message. Nothing was sent for it.</summary>
    public sealed class MessageValidationException : Exception
    {
        public MessageValidationException(ValidationProblem problem, string message, string? field = null, Exception? inner = null)
            : base(message, inner)
        {
            Problem = problem;
            Field = field;
        }

        public ValidationProblem Problem { get; }

        /// <summary>The header, address list or placeholder the problem is in.</summary>
        public string? Field { get; }

        internal static MessageValidationException MissingPlaceholders(string field, IReadOnlyCollection<string> names) =>
            new MessageValidationException(
                ValidationProblem.MissingPlaceholder,
                $"The {field} template uses {{{{{string.Join("}}, {{", names)}}}}} but the input has no such propert{(names.Count == 1 ? "y" : "ies")}.",
                field);
    }
}
