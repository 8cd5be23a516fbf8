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
        // 1 while the pipeline thread waits, so that a poster only pays for a wake-up (a futex call, and a context
        // switch on each side) when it is needed: an action posted while the pipeline thread runs is picked up by
        // its next Drain.
        private int _waiting;
        private volatile bool _ended;
        private bool _disposed;

        protected CancellationToken StopToken => _stopping.Token;

        /// <summary>
        /// Queues an action for the pipeline thread. Safe from any thread. An action that is not
        /// <paramref name="urgent"/> (a per-message result) does not wake a waiting pipeline thread: it runs at the
        /// next wake-up, at the latest at the next idle tick (250 ms), so that a fast run costs no wake-up per message.
        /// </summary>
        protected void Post(Action action, bool urgent = true)
        {
            if (_ended) return; // the cmdlet has ended
            _pending.Enqueue(action);
            if (urgent) Wake();
        }

        /// <summary>Wakes the pipeline thread if it waits, so that it runs what was posted and checks its condition again. Safe from any thread.</summary>
        protected void Wake()
        {
            // Read the flag with a full fence after the caller's change (an enqueue, a task's end): either this thread
            // sees the pump waiting, or the pump (which sets the flag with a full fence, then looks again) sees the change.
            if (Interlocked.CompareExchange(ref _waiting, 0, 0) != 0) Signal();
        }

        private void Signal()
        {
            try { _posted.Set(); }
            catch (ObjectDisposedException) { /* ended meanwhile */ }
        }

        /// <summary>Runs <paramref name="work"/> in the background and pumps posted actions until it ends.</summary>
        protected T Await<T>(Func<CancellationToken, Task<T>> work) => Await(Task.Run(() => work(_stopping.Token)));

        /// <summary>Pumps posted actions until an already started task ends.</summary>
        protected T Await<T>(Task<T> task)
        {
            // Wake the pump the moment the work ends, rather than at its next idle tick.
            if (!task.IsCompleted)
                task.ContinueWith(_ => Wake(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            PumpUntil(() => task.IsCompleted);
            if (task.IsCanceled || task.IsFaulted && task.Exception?.GetBaseException() is OperationCanceledException && _stopping.IsCancellationRequested)
                throw new PipelineStoppedException();
            return task.GetAwaiter().GetResult();
        }

        protected void Await(Func<CancellationToken, Task> work) => Await(async token => { await work(token).ConfigureAwait(false); return true; });

        protected void Await(Task task) => Await(task.ContinueWith(t => { t.GetAwaiter().GetResult(); return true; }, TaskScheduler.Default));

        /// <summary>
        /// Runs posted actions until <paramref name="done"/> holds. Whoever makes it hold calls <see cref="Wake"/>;
        /// otherwise only urgent posts and the idle tick wake the wait (results batch up instead of costing a wake-up each).
        /// </summary>
        protected void PumpUntil(Func<bool> done)
        {
            while (true)
            {
                Drain();
                if (done()) break;
                _posted.Reset();
                Interlocked.Exchange(ref _waiting, 1);
                bool woken = true;
                if (_pending.IsEmpty && !done()) woken = _posted.Wait(250);
                Volatile.Write(ref _waiting, 0);
                if (!woken) OnIdle();
            }
            Drain();
        }

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
