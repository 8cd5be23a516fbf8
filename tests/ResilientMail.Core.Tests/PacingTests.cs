using Microsoft.Extensions.Time.Testing;
using ResilientMail.Core.Resilience;
using ResilientMail.Core.Tests.Support;

namespace ResilientMail.Core.Tests;

public class PacingTests
{
    [Fact]
    public async Task The_first_message_goes_at_once_and_later_ones_wait_one_to_three_seconds()
    {
        var time = new FakeTimeProvider();
        var pacer = new Pacer(new PacingOptions(), time, new Random(42));
        var waits = new List<TimeSpan>();
        for (int i = 0; i < 49; i++)
        {
            var before = time.GetUtcNow();
            await Clock.Drive(time, pacer.WaitTurnAsync(default), TimeSpan.FromMinutes(1), TimeSpan.FromMilliseconds(10));
            waits.Add(time.GetUtcNow() - before);
        }
        Assert.Equal(TimeSpan.Zero, waits[0]);
        Assert.All(waits.Skip(1), w => Assert.InRange(w.TotalSeconds, 1.0, 3.01));
        Assert.True(waits.Skip(1).Distinct().Count() > 10, "gaps should be random");
    }

    [Fact]
    public async Task Every_fiftieth_message_is_followed_by_the_batch_pause()
    {
        var time = new FakeTimeProvider();
        var pacer = new Pacer(new PacingOptions(), time, new FixedRandom(0.5));
        var waits = new List<(TimeSpan Wait, bool Batch)>();
        for (int i = 0; i < 101; i++)
        {
            var w = pacer.NextWait(out var batch);
            waits.Add((w, batch));
            await Clock.Drive(time, pacer.WaitTurnAsync(default), TimeSpan.FromMinutes(1), TimeSpan.FromMilliseconds(100));
        }
        Assert.Equal(new[] { 50, 100 }, waits.Select((w, i) => (w, i)).Where(x => x.w.Batch).Select(x => x.i));
        Assert.Equal(TimeSpan.FromSeconds(30), waits[50].Wait);
        Assert.Equal(TimeSpan.FromSeconds(2), waits[49].Wait);
    }

    [Fact]
    public void Pacing_off_means_no_waits()
    {
        var pacer = new Pacer(PacingOptions.None, new FakeTimeProvider(), new Random(1));
        for (int i = 0; i < 120; i++)
        {
            Assert.Equal(TimeSpan.Zero, pacer.NextWait(out _));
            Assert.True(pacer.WaitTurnAsync(default).IsCompleted);
        }
    }

    [Fact]
    public void Inverted_gaps_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new PacingOptions { MinGap = TimeSpan.FromSeconds(5), MaxGap = TimeSpan.FromSeconds(1) }.Validate());
    }
}
