# Driver of the package tests (cmake -P), registered by tests/package/package_tests.cmake.
#   MODE=install:        install the tapegrad build to a temporary prefix, check the installed tree,
#                        configure, build and run the consumer against it with find_package.
#   MODE=fetchcontent:   configure the consumer with tapegrad added by FetchContent (no network); with
#                        BUILD=ON also build tapegrad inside it and run the consumer.
# Inputs: TAPEGRAD_SOURCE_DIR, TAPEGRAD_BINARY_DIR, WORK_DIR, CONFIG, CXX_COMPILER, [LAUNCHER], [BUILD],
# [SANITIZE] (tapegrad was built with TAPEGRAD_SANITIZE: the consumer needs the sanitizer runtimes too).
foreach(var TAPEGRAD_SOURCE_DIR TAPEGRAD_BINARY_DIR WORK_DIR CONFIG CXX_COMPILER MODE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "[package] ${var} must be given (-D${var}=...)")
  endif()
endforeach()

function(run what)
  string(TIMESTAMP start "%s")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(TIMESTAMP stop "%s")
  math(EXPR seconds "${stop} - ${start}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[package] ${what} failed (exit ${rc}):\n${ARGN}\n${out}\n${err}")
  endif()
  string(REGEX MATCHALL "-- \\[(package|umbrella)\\][^\n]*" notes "${out}")
  list(TRANSFORM notes PREPEND "\n  ")
  string(REPLACE ";" "" notes "${notes}")
  message(STATUS "${what}: ok (${seconds} s)${notes}")
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(consumer_args -S ${TAPEGRAD_SOURCE_DIR}/tests/package -B ${WORK_DIR}/consumer
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER})
if(LAUNCHER)
  list(APPEND consumer_args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
if(SANITIZE)
  list(APPEND consumer_args "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer"
       -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined)
endif()

if(MODE STREQUAL "install")
  set(prefix ${WORK_DIR}/prefix)
  run("cmake --install" ${CMAKE_COMMAND} --install ${TAPEGRAD_BINARY_DIR} --prefix ${prefix} --config ${CONFIG})
  # What must be there, and what must not: the internals stay private.
  foreach(file include/tapegrad/tapegrad.h include/tapegrad/version.h include/tapegrad/framework/tensor.h
               include/tapegrad/layers/multihead_attention.h include/tapegrad/optim/adam.h
               cmake/tapegrad/tapegradConfig.cmake cmake/tapegrad/tapegradConfigVersion.cmake
               cmake/tapegrad/tapegradTargets.cmake cmake/tapegrad/tapegradOpenBLAS.cmake)
    file(GLOB found ${prefix}/${file} ${prefix}/lib*/${file})   # lib/ or lib64/ (GNUInstallDirs)
    if(NOT found)
      message(FATAL_ERROR "[package] ${file} was not installed under ${prefix}")
    endif()
  endforeach()
  file(GLOB_RECURSE internal RELATIVE ${prefix} ${prefix}/include/*/kernels/* ${prefix}/include/*hdf5_handles.h
       ${prefix}/include/*.cpp)
  if(internal)
    message(FATAL_ERROR "[package] internal files were installed: ${internal}")
  endif()
  run("configure consumer (find_package)" ${CMAKE_COMMAND} ${consumer_args}
      -DCMAKE_BUILD_TYPE=${CONFIG} -DCMAKE_PREFIX_PATH=${prefix})
  set(BUILD ON)
elseif(MODE STREQUAL "fetchcontent")
  # No CMAKE_BUILD_TYPE, and Release flags of the parent's own choosing: tapegrad must change neither
  # (checks.cmake). With BUILD=ON the build type is Release, as a user building for speed would pick.
  if(BUILD)
    list(APPEND consumer_args -DCMAKE_BUILD_TYPE=Release)
  endif()
  run("configure consumer (FetchContent)" ${CMAKE_COMMAND} ${consumer_args} "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG"
      -DTAPEGRAD_CONSUMER_MODE=fetchcontent -DTAPEGRAD_SOURCE_DIR=${TAPEGRAD_SOURCE_DIR})
else()
  message(FATAL_ERROR "[package] unknown MODE=${MODE}")
endif()

if(BUILD)
  cmake_host_system_information(RESULT cores QUERY NUMBER_OF_LOGICAL_CORES)
  run("build consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/consumer --config ${CONFIG} -j ${cores})
  run("run consumer" ${WORK_DIR}/consumer/consumer)
  message(STATUS "${last_output}")
endif()
