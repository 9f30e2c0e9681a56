using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace ChunkUpload.Core.Integrity;

/// <summary>
/// A SHA-256 whose intermediate state can be exported, stored and imported elsewhere (another node) to go on hashing
/// where it stopped. .NET's hashes cannot do that, so this calls OpenSSL's libcrypto (the library .NET itself uses on
/// Linux) through its low-level <c>SHA256_Init</c>/<c>SHA256_Update</c>/<c>SHA256_Final</c>, whose context is a plain
/// C struct of 32-bit words: its bytes are the whole state. Where that library or those entry points are missing, or
/// the machine is not little-endian, <see cref="IsAvailable"/> is false and callers hash another way.
/// </summary>
/// <remarks>Not thread-safe: one owner at a time. Holds no native resource (the context lives in a managed array).</remarks>
public sealed unsafe class ResumableSha256
{
    /// <summary>Bytes of an exported state: a format byte, a version byte and OpenSSL's <c>SHA256_CTX</c>.</summary>
    public const int StateSize = 2 + ContextSize;

    /// <summary>Bytes of the digest.</summary>
    public const int HashSize = 32;

    // typedef struct { uint h[8]; uint Nl, Nh; uint data[16]; uint num, md_len; } SHA256_CTX: 28 words, no padding.
    private const int ContextSize = 112;
    private const int NlOffset = 32;
    private const int NumOffset = 104;
    private const int MdLenOffset = 108;
    private const byte Format = 0x53; // 'S': SHA256_CTX as little-endian 32-bit words
    private const byte Version = 1;

    private static readonly Native? Library = Native.Load();

    private readonly byte[] _context = new byte[ContextSize];
    private bool _finished;

    private ResumableSha256()
    {
    }

    /// <summary>True when the state can be exported and imported on this machine (see the class remarks).</summary>
    public static bool IsAvailable => Library is not null;

    /// <summary>A new hash of no bytes.</summary>
    /// <exception cref="PlatformNotSupportedException">When <see cref="IsAvailable"/> is false.</exception>
    public static ResumableSha256 Create()
    {
        var native = Library ?? throw Unavailable();
        var hash = new ResumableSha256();
        fixed (byte* context = hash._context)
        {
            if (native.Init(context) != 1)
                throw new InvalidOperationException("SHA256_Init failed.");
        }

        return hash;
    }

    /// <summary>A hash that goes on from an <see cref="Export"/>ed state.</summary>
    /// <exception cref="FormatException">When the bytes are not a state this type exported.</exception>
    /// <exception cref="PlatformNotSupportedException">When <see cref="IsAvailable"/> is false.</exception>
    public static ResumableSha256 Import(ReadOnlySpan<byte> state)
    {
        _ = Library ?? throw Unavailable();
        if (state.Length != StateSize || state[0] != Format || state[1] != Version)
            throw new FormatException("Not an exported SHA-256 state of this format.");
        var context = state[2..];
        uint bitsLow = BinaryPrimitives.ReadUInt32LittleEndian(context[NlOffset..]);
        uint num = BinaryPrimitives.ReadUInt32LittleEndian(context[NumOffset..]);
        uint mdLen = BinaryPrimitives.ReadUInt32LittleEndian(context[MdLenOffset..]);
        // The bytes waiting in the block buffer are the length hashed so far modulo the block size.
        if (mdLen != HashSize || num >= 64 || bitsLow % 8 != 0 || (bitsLow / 8) % 64 != num)
            throw new FormatException("The exported SHA-256 state is inconsistent.");
        var hash = new ResumableSha256();
        context.CopyTo(hash._context);
        return hash;
    }

    /// <summary>Hashes more bytes.</summary>
    public void Append(ReadOnlySpan<byte> bytes)
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        if (bytes.IsEmpty)
            return;
        fixed (byte* context = _context)
        fixed (byte* data = bytes)
        {
            if (Library!.Update(context, data, (nuint)bytes.Length) != 1)
                throw new InvalidOperationException("SHA256_Update failed.");
        }
    }

    /// <summary>The state after every byte appended so far, for <see cref="Import"/> (here or on another machine).</summary>
    public byte[] Export()
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        var state = new byte[StateSize];
        state[0] = Format;
        state[1] = Version;
        _context.CopyTo(state, 2);
        return state;
    }

    /// <summary>The digest of every byte appended so far; the hash goes on as if it had not been asked.</summary>
    public byte[] GetCurrentHash()
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        var copy = new ResumableSha256();
        _context.CopyTo(copy._context, 0);
        return copy.Finish();
    }

    /// <summary>The digest of every byte appended; the hash cannot be used after.</summary>
    public byte[] Finish()
    {
        ObjectDisposedException.ThrowIf(_finished, this);
        var digest = new byte[HashSize];
        fixed (byte* context = _context)
        fixed (byte* md = digest)
        {
            if (Library!.Final(md, context) != 1)
                throw new InvalidOperationException("SHA256_Final failed.");
        }

        _finished = true;
        return digest;
    }

    private static PlatformNotSupportedException Unavailable() =>
        new("A resumable SHA-256 needs OpenSSL's libcrypto (libcrypto.so.3) on a little-endian Linux machine.");

    private sealed class Native
    {
        public delegate* unmanaged<byte*, int> Init;
        public delegate* unmanaged<byte*, byte*, nuint, int> Update;
        public delegate* unmanaged<byte*, byte*, int> Final;

        public static Native? Load()
        {
            // The struct's bytes are its words in the machine's order: little-endian x64 and Arm64 share one layout.
            if (!OperatingSystem.IsLinux() || !BitConverter.IsLittleEndian
                || RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64))
                return null;
            if (!NativeLibrary.TryLoad("libcrypto.so.3", out nint library))
                return null;
            if (!NativeLibrary.TryGetExport(library, "SHA256_Init", out nint init)
                || !NativeLibrary.TryGetExport(library, "SHA256_Update", out nint update)
                || !NativeLibrary.TryGetExport(library, "SHA256_Final", out nint final))
                return null;
            return new Native
            {
                Init = (delegate* unmanaged<byte*, int>)init,
                Update = (delegate* unmanaged<byte*, byte*, nuint, int>)update,
                Final = (delegate* unmanaged<byte*, byte*, int>)final,
            };
        }
    }
}
