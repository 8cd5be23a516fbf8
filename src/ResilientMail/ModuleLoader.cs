using System;
using System.Collections.Generic;
using System.IO;
using System.Management.Automation;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;

namespace ResilientMail
{
    /// <summary>
    /// Keeps ResilientMail's dependencies (MailKit, MimeKit, BouncyCastle, SendGrid, AWSSDK.Core, Polly, ...) out
    /// of the way of other modules that ship other versions of them. On PowerShell 7 this cmdlet assembly lives
    /// in the default load context and ResilientMail.Core with every dependency in a context of its own, loaded
    /// from the Dependencies folder that default probing never looks in (the "bridge" pattern). The cmdlet
    /// assembly references no third-party type, so nothing it does makes the default context load one. On
    /// Windows PowerShell 5.1 the Dependencies folder is resolved the plain way.
    /// </summary>
    public sealed class ModuleLoader : IModuleAssemblyInitializer, IModuleAssemblyCleanup
    {
        internal static string DependencyFolder =>
            Path.Combine(Path.GetDirectoryName(typeof(ModuleLoader).Assembly.Location) ?? ".", "Dependencies");

        private static bool OnDotNetCore => !RuntimeInformation.FrameworkDescription.StartsWith(".NET Framework", StringComparison.OrdinalIgnoreCase);

        public void OnImport()
        {
            if (OnDotNetCore) IsolatedLoader.Register(DependencyFolder);
            else DesktopLoader.Register(DependencyFolder);
        }

        public void OnRemove(PSModuleInfo module)
        {
            if (OnDotNetCore) IsolatedLoader.Unregister();
            else DesktopLoader.Unregister();
        }
    }

    /// <summary>PowerShell 7: the bridge from the default context to ResilientMail.Core's own context.</summary>
    internal static class IsolatedLoader
    {
        private static readonly object Gate = new object();
        // One per process: Core's types must stay the same types across Remove-Module and re-import.
        private static DependencyLoadContext? _context;
        private static bool _registered;

        public static void Register(string folder)
        {
            lock (Gate)
            {
                _context ??= new DependencyLoadContext(folder);
                if (_registered) return;
                AssemblyLoadContext.Default.Resolving += Resolve;
                _registered = true;
            }
        }

        public static void Unregister()
        {
            lock (Gate)
            {
                if (!_registered) return;
                AssemblyLoadContext.Default.Resolving -= Resolve;
                _registered = false;
            }
        }

        private static Assembly? Resolve(AssemblyLoadContext context, AssemblyName name) =>
            string.Equals(name.Name, "ResilientMail.Core", StringComparison.OrdinalIgnoreCase) ? _context?.LoadFromAssemblyName(name) : null;
    }

    /// <summary>Loads from the Dependencies folder everything the runtime itself does not provide.</summary>
    internal sealed class DependencyLoadContext : AssemblyLoadContext
    {
        private readonly string _folder;
        private readonly HashSet<string> _platform;

        public DependencyLoadContext(string folder)
        {
            _folder = folder;
            // The runtime's own assemblies (and PowerShell's) come from the default context, so that types such
            // as ValueTask or Channel<T> are the same on both sides of the bridge.
            _platform = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            var tpa = AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string ?? "";
            foreach (var path in tpa.Split(new[] { Path.PathSeparator }, StringSplitOptions.RemoveEmptyEntries))
                _platform.Add(Path.GetFileNameWithoutExtension(path));
        }

        protected override Assembly? Load(AssemblyName name)
        {
            if (name.Name == null || _platform.Contains(name.Name)) return null;
            var path = Path.Combine(_folder, name.Name + ".dll");
            return File.Exists(path) ? LoadFromAssemblyPath(path) : null;
        }
    }

    /// <summary>Windows PowerShell 5.1: no load contexts; resolve from the Dependencies folder.</summary>
    internal static class DesktopLoader
    {
        private static string _folder = "";
        private static bool _registered;

        public static void Register(string folder)
        {
            _folder = folder;
            if (_registered) return;
            AppDomain.CurrentDomain.AssemblyResolve += Resolve;
            _registered = true;
        }

        public static void Unregister()
        {
            if (!_registered) return;
            AppDomain.CurrentDomain.AssemblyResolve -= Resolve;
            _registered = false;
        }

        private static Assembly? Resolve(object? sender, ResolveEventArgs e)
        {
            var path = Path.Combine(_folder, new AssemblyName(e.Name).Name + ".dll");
            return File.Exists(path) ? Assembly.LoadFrom(path) : null;
        }
    }
}
