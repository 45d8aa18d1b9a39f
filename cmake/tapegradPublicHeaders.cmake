# tapegrad_public_headers(<out-var> <source-dir>): the public headers, relative to the source root
# (framework/tensor.h, layers/linear.h, ...): everything under framework/, layers/, optim/ and distributed/
# except the kernels, the HDF5 handle internals and distributed/{collectives,watchdog}.h (distributed/ is public only
# in a build with MPI; the top CMakeLists.txt drops it otherwise). One definition for the build-tree
# include root, install() and the umbrella-header check (cmake/check_umbrella.cmake).
function(tapegrad_public_headers out_var source_dir)
  set(rerun_on_change CONFIGURE_DEPENDS)   # a new header re-runs the configure step ...
  if(CMAKE_SCRIPT_MODE_FILE)
    set(rerun_on_change "")                # ... which does not exist in script mode (-P)
  endif()
  file(GLOB_RECURSE headers RELATIVE ${source_dir} ${rerun_on_change}
    ${source_dir}/framework/*.h ${source_dir}/layers/*.h ${source_dir}/optim/*.h ${source_dir}/distributed/*.h)
  list(FILTER headers EXCLUDE REGEX
       "^framework/kernels/|^framework/io/hdf5_handles\\.h$|^distributed/(collectives|watchdog)\\.h$")
  list(SORT headers)
  set(${out_var} ${headers} PARENT_SCOPE)
endfunction()
