using System;
using System.Collections.Concurrent;
using System.Management.Automation;
using System.Threading;
using System.Threading.Tasks;

namespace ResilientMail.Internal
{
    /// <summary>
    /// Runs async engine work off the pipeline thread and pumps what it reports back onto it
    /// (WriteObject and friends may only be called there). StopProcessing cancels the token that
    /// reaches every socket and delay.
    /// </summary>
    public abstract class AsyncCmdlet : PSCmdlet, IDisposable
    {
        private readonly CancellationTokenSource _stopping = new CancellationTokenSource();
        // A queue and an event that never spins: a spinning wait (BlockingCollection, SemaphoreSlim) burns the
        // core that the sender and the server need while the pipeline thread waits for them.
        private readonly ConcurrentQueue<Action> _pending = new ConcurrentQueue<Action>();
        private readonly ManualResetEventSlim _posted = new ManualResetEventSlim(false, 0);
        private volatile bool _ended;
        private bool _disposed;

        protected CancellationToken StopToken => _stopping.Token;

        /// <summary>Queues an action for the pipeline thread. Safe from any thread.</summary>
        protected void Post(Action action)
        {
            if (_ended) return; // the cmdlet has ended
            _pending.Enqueue(action);
            try { _posted.Set(); }
            catch (ObjectDisposedException) { /* ended meanwhile */ }
        }

        /// <summary>Runs <paramref name="work"/> in the background and pumps posted actions until it ends.</summary>
        protected T Await<T>(Func<CancellationToken, Task<T>> work) => Await(Task.Run(() => work(_stopping.Token)));

        /// <summary>Pumps posted actions until an already started task ends.</summary>
        protected T Await<T>(Task<T> task)
        {
            // Wake the pump the moment the work ends, rather than at its next idle tick.
            task.ContinueWith(_ => Post(Wake), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            while (!task.IsCompleted)
            {
                _posted.Reset();
                if (_pending.TryDequeue(out var action)) action();
                else if (!task.IsCompleted && !_posted.Wait(250)) OnIdle();
            }
            Drain();
            if (task.IsCanceled || task.IsFaulted && task.Exception?.GetBaseException() is OperationCanceledException && _stopping.IsCancellationRequested)
                throw new PipelineStoppedException();
            return task.GetAwaiter().GetResult();
        }

        protected void Await(Func<CancellationToken, Task> work) => Await(async token => { await work(token).ConfigureAwait(false); return true; });

        protected void Await(Task task) => Await(task.ContinueWith(t => { t.GetAwaiter().GetResult(); return true; }, TaskScheduler.Default));

        private static readonly Action Wake = () => { };

        /// <summary>Runs posted actions that are still waiting.</summary>
        protected void Drain()
        {
            while (_pending.TryDequeue(out var action)) action();
        }

        /// <summary>Called on the pipeline thread about every 250 ms while work runs (for progress clocks).</summary>
        protected virtual void OnIdle() { }

        protected override void StopProcessing()
        {
            _stopping.Cancel();
            base.StopProcessing();
        }

        /// <summary>Releases what the cmdlet holds; called once, also after Ctrl+C and terminating errors.</summary>
        protected virtual void Release() { }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            try { Release(); }
            finally
            {
                _ended = true;
                _stopping.Dispose();
                _posted.Dispose();
            }
        }
    }
}
